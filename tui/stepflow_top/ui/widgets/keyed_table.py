"""A DataTable that diff-updates rows keyed by id, keeps them in a given order,
repaints one row after a cell change, and moves with j/k/g/G/Home/End itself."""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from .cell_looks import MAX_DRAWN_CELLS, cell_look, placed
from .status_colours import STATUS_CLASSES, StatusColours


REPAINTED_ONE_BY_ONE = 4  # changed rows update_rows repaints one by one, at most


class KeyedTable(StatusColours, DataTable):
    """A DataTable updated by diffing rows keyed by id (as Dolphie does).

    ``show_rows`` removes rows whose key is gone, updates only the cells that
    changed, adds new rows and puts them in the given order, all inside one
    ``batch_update`` and with the cursor kept on the same key, so rows never jump
    under the reader's cursor. Everything goes through DataTable's public API but one
    method, ``_render_cell``, which overrides DataTable's private cell renderer (with
    its signature of Textual 8.2) to keep drawn cells by their look;
    tests/functional/test_keyed_table.py fails when a Textual release renames it or
    stops calling it per cell. Two more places rely on what public calls do, each
    guarded by a test: ``_set_cell`` on ``update_cell`` asking for a
    bare repaint (tests/functional/test_keyed_table.py), ``relabel`` on a sort drawing
    the header anew (tests/functional/test_keyed_table.py).

    The table carries its own movement keys (j/k, g/G, Home/End go to the first and
    last row), so screens forward nothing, and posts ``NearEnd`` when the reader
    moves near the last row.
    """

    DEFAULT_CSS = "KeyedTable { height: 1fr; }"
    COMPONENT_CLASSES = STATUS_CLASSES

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", show=False),
        Binding("j", "cursor_down", "Cursor down", show=False),
        Binding("k", "cursor_up", "Cursor up", show=False),
        Binding("g,home", "scroll_top", "First row", show=False),
        Binding("G,end", "scroll_bottom", "Last row", show=False),
    ]

    # True while _set_cell sets a cell: update_cell's repaint of the whole table is
    # dropped, and the caller repaints the rows that changed (_repaint).
    _setting_cell = False
    # True while show_rows removes rows: remove_row asks for a layout of the whole
    # screen, which repaints and re-sends every line of it (the footer, the store bar,
    # the scrollbar) with each run that scrolls out of a busy list. A repaint of the
    # table is enough: a changed row count changes ``virtual_size``, whose own watcher
    # asks for the layout.
    _removing = False
    # While render_lines runs: what every line shares (see _frame_look).
    _frame: tuple[list, tuple, object, list[int]] | None = None

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._columns = columns
        # (what a cell shows, style, width, cursor, hover, ...) -> ((row, column)
        # drawn at, lines): see _render_cell.
        self._drawn: dict[tuple, list[list[Segment]]] = {}
        # row key -> (what its line was drawn from, row index, strip)
        self._lines: dict[object, tuple[tuple, int, Strip]] = {}
        # row key -> a number that changes whenever a cell of the row does (never reused)
        self._version: dict[str, int] = {}
        # row key -> the cells list it was last given (see _update)
        self._given: dict[str, Sequence[Text]] = {}
        self._versions = itertools.count()

    class ReaderMoved(Message):
        """The reader moved the cursor (a key or a click; never a refresh moving the
        cursor with its row): a list that follows its newest row stops following."""

    class NearEnd(Message):
        """The reader moved the cursor to one of the last three rows, so more rows may
        be wanted."""

    def _reader_moved(self) -> None:
        self.post_message(self.ReaderMoved())
        if self.row_count and self.cursor_row >= self.row_count - 3:
            self.post_message(self.NearEnd())

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._reader_moved()

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self._reader_moved()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._reader_moved()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._reader_moved()

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self._reader_moved()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._reader_moved()

    def on_click(self) -> None:  # after DataTable's own handler moved the cursor
        self._reader_moved()

    def on_mount(self) -> None:
        for key, label in self._columns:
            self.add_column(label, key=key)

    @property
    def cursor_key(self) -> str | None:
        """Key of the row under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:  # cursor outside the rows while the table changes
            return None

    def show_rows(
        self, rows: Iterable[tuple[str, Sequence[Text]]], *, follow: str | None = None
    ) -> None:
        """Make the table hold exactly ``rows`` ((key, cells) in display order, each
        row with cell objects of its own), with the cursor on its row's key, or on
        ``follow`` when given. A key seen twice (rows with NULL or equal ids: one bad
        row must not hide the others) gets a suffix. A row given the very list of
        cells it was given last time is taken as unchanged (do not change a list
        after giving it)."""
        rows = _unique_keys(rows)
        keys = [key for key, _ in rows]
        wanted = set(keys)
        selected = self.cursor_key
        # Rows that come, go or move: the whole table is repainted, once.
        moved = keys != [row.key.value for row in self.ordered_rows]
        with self.app.batch_update():
            self._removing = True
            try:
                for row_key in [k for k in self.rows if k.value not in wanted]:
                    self.remove_row(row_key)
                    self._version.pop(row_key.value, None)
                    self._given.pop(row_key.value, None)
            finally:
                self._removing = False
            changed = []
            for key, cells in rows:
                if key not in self.rows:
                    self.add_row(*cells, key=key)
                    self._version[key] = next(self._versions)
                    self._given[key] = cells
                elif self._update(key, cells):
                    changed.append(key)
            self._order(keys)
            self._repaint(changed, everything=moved)
            target = follow or selected
            if target is not None and target in wanted:
                row = self.get_row_index(target)
                if row != self.cursor_row:
                    self.move_cursor(row=row, animate=False)

    def update_rows(self, rows: Iterable[tuple[str, Sequence[Text]]]) -> None:
        """Update the cells of rows already shown (unknown keys are ignored); the
        order and the set of rows stay as they are."""
        with self.app.batch_update():
            self._repaint([key for key, cells in rows
                           if key in self.rows and self._update(key, cells)])

    def _repaint(self, changed: list[str], *, everything: bool = False) -> None:
        """Repaint the rows whose cells changed: a few one by one, more (or
        ``everything``: rows came, went or moved) with the table, at once (finding a
        row's place costs a walk over the rows above it)."""
        if everything or len(changed) > REPAINTED_ONE_BY_ONE:
            self.refresh()
        else:
            for key in changed:
                self.refresh_row(self.get_row_index(key))

    def _update(self, key: str, cells: Sequence[Text]) -> bool:
        """Set the cells of row ``key`` that changed, without a repaint; returns
        whether any did."""
        # The very list of cells given last time: nothing changed (a screen that keeps
        # the cells of rows that did not change gives them again, and comparing every
        # cell of every row was most of the cost of showing a snapshot).
        if self._given.get(key) is cells:
            return False
        self._given[key] = cells
        changed = False
        for column, before, after in zip(self.columns.values(), self.get_row(key), cells,
                                         strict=True):
            if before is after or before == after:
                continue
            changed = True
            if after.cell_len > column.content_width:
                # The column must grow: re-measuring repaints the whole table.
                self.update_cell(key, column.key, after, update_width=True)
            else:
                self._set_cell(key, column.key, after)
        if changed:
            self._version[key] = next(self._versions)
        return changed

    def _set_cell(self, key: str, column_key: object, value: Text) -> None:
        # update_cell repaints the whole table: a ticking elapsed time would re-send
        # every visible row to the terminal each second (measured: 8.9 KB/s against
        # 0.3 KB/s for the row alone). DataTable has no public way to set a cell
        # without that repaint, so the repaint it asks for (a bare refresh()) is
        # dropped and the caller repaints what changed (_repaint). This relies on
        # update_cell asking for a bare refresh and nothing else (Textual 8.2).
        self._setting_cell = True
        try:
            self.update_cell(key, column_key, value)
        finally:
            self._setting_cell = False

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> KeyedTable:
        """Widget.refresh, except for the bare repaint ``update_cell`` asks for while
        ``_set_cell`` sets a cell (the caller repaints what changed), and the layout
        ``remove_row`` asks for while ``show_rows`` removes rows (a repaint)."""
        if self._setting_cell and not (regions or layout or recompose):
            return self
        if self._removing and layout and not (regions or recompose):
            layout = False
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        """DataTable's cell rendering, kept by what the cell shows.

        DataTable keys its render caches on a counter that every ``add_row``,
        ``remove_row``, ``sort`` and ``update_cell`` moves, so one new run at the top
        re-renders every visible cell (measured: 20-40 ms per frame, most of the TUI's
        CPU under a busy writer). Here a cell is drawn again only when no cell with
        the same text, spans, style, width and highlight was drawn before: a new row
        mostly repeats cells already drawn ("● running", a user, a step name), a
        row that moved repeats its own, and the header repeats itself. A kept cell
        carries the mouse meta (``{"row", "column"}``, which DataTable reads on
        clicks) of the place it was drawn at: ``render_line`` puts its line's place
        into it (``cell_looks.placed``). This overrides DataTable's one private
        rendering method with its signature of Textual 8.2
        (tests/functional/test_keyed_table.py fails when it changes).
        """
        header = row_index == -1
        if (hover or row_index < -1 or column_index < max(0, self.fixed_columns)
                or 0 <= row_index < self.fixed_rows):
            # Labels and fixed cells; and the cell under the mouse, whose look also
            # depends on whether DataTable shows the hover (it keeps that to itself):
            # DataTable's own drawing and caches.
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        look = cell_look(self.ordered_columns[column_index].label if header
                          else self.get_cell_at(Coordinate(row_index, column_index)))
        if look is None:
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        if header:  # drawn in the header's style and height
            look = ("header", self.header_height, look)
        frame = self._frame if self._frame is not None else self._frame_look()
        key = (look, base_style, width, cursor, self.show_cursor, frame[2])
        drawn = self._drawn.get(key)
        if drawn is None:
            drawn = super()._render_cell(row_index, column_index, base_style, width,
                                         cursor, hover)
            if len(self._drawn) > MAX_DRAWN_CELLS:
                self._drawn.clear()
            self._drawn[key] = drawn
        return drawn

    def render_line(self, y: int) -> Strip:
        """DataTable's line, kept for a row that only moved, and with the cells of a body
        row that look alike joined into one segment.

        A row line is drawn again only when one of its cells, the column widths,
        its highlight (cursor, hover), the widget's style or the horizontal scroll
        changed; one that moved gets its new index put into its mouse meta. Textual
        writes every segment with its own colour sequence and a reset, and each cell
        differs from its neighbour only in its mouse meta, so a row of eight cells cost
        ~370 bytes to the terminal where ~200 show the same colours again. The joined
        segment keeps the first cell's meta: the row a click lands on is right (the
        cursor selects rows), the column is the row's first alike cell. Header cells
        are never joined (a click there sorts by its column).
        """
        header = self.header_height if self.show_header else 0
        index = y - header + self.scroll_offset.y
        frame = self._frame if self._frame is not None else self._frame_look()
        if y < header:
            return placed(super().render_line(y), -1, frame[3], frame[1][1])
        if not 0 <= index < self.row_count:
            return super().render_line(y)
        row_key = frame[0][index]
        version = self._version.get(row_key.value)
        if version is None:  # a row added other than by show_rows
            return placed(super().render_line(y), index, frame[3], frame[1][1])
        key = (version, frame[1], self.cursor_row == index, self.hover_coordinate.row == index)
        drawn = self._lines.get(row_key)
        if drawn is not None and drawn[0] == key:
            if drawn[1] == index:
                return drawn[2]
            meta = Style.from_meta({"row": index})
            strip = Strip([Segment(text, style + meta if style else style, control)
                           for text, style, control in drawn[2]], drawn[2].cell_length)
        else:
            strip = placed(super().render_line(y), index, frame[3], frame[1][1])
        self._lines[row_key] = (key, index, strip)
        if len(self._lines) > MAX_DRAWN_CELLS:
            self._lines.clear()
        return strip

    def render_lines(self, crop: Region) -> list[Strip]:
        """DataTable's lines, with what every line of this frame shares (the row order,
        the widths, the widget's style) looked up once, not once per line."""
        self._frame = self._frame_look()
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def _frame_look(self) -> tuple[list, tuple, object, list[int]]:
        """(row keys in order, what a line's look depends on, the pseudo-classes a
        cell's look depends on, the cell where each column starts)."""
        widths = tuple(c.get_render_width(self) for c in self.ordered_columns)
        return ([row.key for row in self.ordered_rows],
                (self.size.width, self.scroll_offset.x, self.rich_style, self.has_focus,
                 self.show_cursor, widths),
                self.get_pseudo_class_state(),
                list(itertools.accumulate(widths, initial=0)))

    def notify_style_update(self) -> None:
        """Styles changed (a theme, a pseudo-class): every cell is drawn again."""
        self._drawn.clear()
        self._lines.clear()
        super().notify_style_update()

    def relabel(self, labels: dict[str, Text]) -> None:
        """New header labels by column key (a sort marker). DataTable has no public
        way to change a label: the Column's ``label`` is set, and the rows are put in
        their own order again, because a sort is the public call after which DataTable
        draws every cell, the header's included, anew (tests/functional/test_keyed_table.py
        fails when a Textual upgrade changes that)."""
        for key, text in labels.items():
            column = self.columns[key]  # type: ignore[index]
            column.label = text
            column.content_width = max(column.content_width, text.cell_len)
        self._drawn.clear()
        self._lines.clear()
        self._order([row.key.value for row in self.ordered_rows], again=True)
        self.refresh(layout=True)

    def _order(self, keys: list[str], *, again: bool = False) -> None:
        if not again and [row.key.value for row in self.ordered_rows] == keys:
            return
        # DataTable.sort hands its key function only cell values, not row keys, so
        # each row is ranked by the identity of the object in its first column (every
        # row holds its own). A rank column would cost two cells of padding per row.
        first = next(iter(self.columns))
        rank = {id(self.get_cell(key, first)): i for i, key in enumerate(keys)}
        if len(rank) != len(keys):
            raise ValueError("two rows share one first-cell object: the order is unknown")
        self.sort(first, key=lambda value: rank[id(value)])


def _unique_keys(rows: Iterable[tuple[str, Sequence[Text]]]) -> list[tuple[str, Sequence[Text]]]:
    seen: dict[str, int] = {}
    unique = []
    for key, cells in rows:
        n = seen.get(key, 0)
        seen[key] = n + 1
        unique.append((key if n == 0 else f"{key}\x00{n}", cells))
    return unique
