"""What a table cell and a table segment look like, as cache keys, and a DataTable line
with its place put into its mouse meta: the pieces ``KeyedTable`` keeps drawn cells by.

DataTable gives every cell segment the mouse meta ``{"row": r, "column": c}`` (it reads
it on clicks and hovers) and its filler past the last column
``{"row": r, "column": 0, "out_of_bounds": True}`` (textual/widgets/_data_table.py,
``_render_cell`` and ``_render_line_in_row``, Textual 8.2).
"""

from __future__ import annotations

from bisect import bisect_right

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

MAX_DRAWN_CELLS = 20_000  # drawn cells kept (rows × columns × highlight states)

_LOOKS: dict[Style, tuple[Style, int] | None] = {}
_METAS: dict[tuple[int, int], Style] = {}


def cell_look(value: object) -> tuple | None:
    """What a cell shows, as a key (None for a value that cannot be one): its text,
    spans and the settings Rich renders it with."""
    if isinstance(value, Text):
        return (value.plain, value.style, tuple(value.spans), value.justify,
                value.overflow, value.no_wrap)
    if isinstance(value, str):
        return (value,)
    return None


def placed(strip: Strip, row: int, starts: list[int], scroll_x: int) -> Strip:
    """DataTable's line for ``row`` (-1: the header) with this place in its cells' mouse
    meta (a kept cell names the place it was drawn at), and a body row's alike
    neighbouring cells joined into one segment (``KeyedTable.render_line`` says why).

    ``starts``: the cell where each column starts and, last, where the columns end;
    ``scroll_x``: the horizontal scroll offset, the cell the line starts at. A joined
    segment names the column its first cell is in. For tables with no fixed columns
    or row labels, whose line is their columns side by side (KeyedTable's).
    """
    segments: list[Segment] = []
    joinable: Style | None = None
    x = scroll_x
    for text, style, control in strip:
        look = segment_look(style) if style is not None and not control else None
        if look is not None and row >= 0 and look[0] == joinable:
            last = segments[-1]
            segments[-1] = Segment(last.text + text, last.style)
        elif look is None or x >= starts[-1]:
            # Padding, a segment of no cell, or the filler past the last column (its
            # meta says "out_of_bounds"): as DataTable drew it.
            segments.append(Segment(text, style, control))
            joinable = None
        else:
            segments.append(Segment(text, look[0] + place_meta(row, bisect_right(starts, x) - 1)))
            joinable = look[0]
        x += cell_len(text)
    return Strip(segments, strip.cell_length)


def segment_look(style: Style) -> tuple[Style, int] | None:
    """What a table segment's ``style`` shows (meta removed) and the row its meta
    names; None when it names no row. Remembered per style: a screen's cells use a
    few hundred."""
    try:
        return _LOOKS[style]
    except KeyError:
        pass
    row = style.meta.get("row") if style.meta else None
    look = (style.clear_meta_and_links(), row) if isinstance(row, int) else None
    if len(_LOOKS) > MAX_DRAWN_CELLS:
        _LOOKS.clear()
    _LOOKS[style] = look
    return look


def place_meta(row: int, column: int) -> Style:
    """The mouse meta DataTable gives a cell at ``row``, ``column``; remembered, so that
    Rich's cache of added styles finds a cell's look with its place again."""
    try:
        return _METAS[row, column]
    except KeyError:
        pass
    if len(_METAS) > MAX_DRAWN_CELLS:
        _METAS.clear()
    meta = _METAS[row, column] = Style.from_meta({"row": row, "column": column})
    return meta
