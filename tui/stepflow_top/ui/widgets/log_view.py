"""A virtual log view: draws only the visible rows, with the script's colours,
severity tints, search matches, optional wrapping and optional timestamps."""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache
from typing import Sequence

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...store.ansi import Colour, Rendition
from ...store.loglines import Level, LogLine

MATCH_STYLE = Style(bgcolor="yellow", color="black")
CURRENT_STYLE = Style(bgcolor="dark_orange", color="black", bold=True)
LEVEL_STYLES = {Level.ERROR: Style(bgcolor="#4a1414"), Level.WARNING: Style(bgcolor="#3d3510")}
CURRENT_LINE_STYLE = Style(underline=True)  # the line n/N or e/E moved to
STAMP_STYLE = Style(dim=True)
CUT_MARK = "…"


def _colour(colour: Colour) -> Color | None:
    if colour is None:
        return None
    if isinstance(colour, int):
        return Color.from_ansi(colour)
    return Color.from_rgb(*colour)


@lru_cache(maxsize=1024)
def rich_style(rendition: Rendition) -> Style:
    """The Rich style of an SGR rendition; unset attributes stay unset, so the
    widget's own style shows through."""
    return Style(color=_colour(rendition.fg), bgcolor=_colour(rendition.bg),
                 bold=rendition.bold or None, dim=rendition.dim or None,
                 italic=rendition.italic or None, underline=rendition.underline or None,
                 reverse=rendition.reverse or None, strike=rendition.strike or None)


def _cells(text: str) -> int:
    # Control characters are spelled out by then, so ASCII is one cell a character.
    return len(text) if text.isascii() else cell_len(text)


class LogView(ScrollView, can_focus=True):
    """Lines of a log (``LogLine``s) drawn with ``render_line``, so a 50 000-line
    log costs what the visible 20 rows cost (the Toolong model).

    ``lines`` holds each line's text as shown (with or without timestamps);
    ``search`` highlights every case-insensitive match in it and ``current`` is the
    line of the match the reader moved to. ``follow`` keeps the view at the end;
    ``wrap`` folds long lines at the view's width; ``timestamps`` shows the
    service's ``[time] `` prefixes.
    """

    # The vertical scrollbar's room is kept when there is no scrollbar, so the
    # wrapping width does not change when wrapped rows make one appear.
    DEFAULT_CSS = "LogView { scrollbar-gutter: stable; }"

    search: reactive[str] = reactive("")
    current: reactive[int | None] = reactive(None)
    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)
    timestamps: reactive[bool] = reactive(True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries: tuple[LogLine, ...] = ()
        self.lines: list[str] = []
        self.empty_text = ""  # shown, line by line, while there are no lines
        self._cells: list[int] = []
        # The first row of each line while the layout wraps; empty while it does not.
        self._starts: list[int] = []
        self._wrap_width = 0
        self._matches: list[int] | None = None
        self._strips: LRUCache[tuple[int, Style], Strip] = LRUCache(1024)

    # -- content -----------------------------------------------------------
    def set_lines(self, entries: Sequence[LogLine]) -> None:
        """Show ``entries`` (a new read of the file replaces the old one)."""
        self.entries = tuple(entries)
        self._reshape()
        if self.follow:
            # The new virtual size takes effect on the next layout.
            self.call_after_refresh(self.scroll_end, animate=False)

    def _reshape(self) -> None:
        stamps = self.timestamps
        self.lines = [entry.plain(stamps) for entry in self.entries]
        self._cells = [_cells(line) + len(CUT_MARK) * (entry.cut_before + entry.cut_after)
                       for line, entry in zip(self.lines, self.entries, strict=True)]
        self._matches = None
        self._relayout()

    def _relayout(self) -> None:
        """Virtual size (and the row of each line while wrapping) for the current
        lines and width."""
        self._strips.clear()
        if self.wrap:
            width = self._wrap_width = max(1, self.scrollable_content_region.width)
            starts, row = [], 0
            for cells in self._cells:
                starts.append(row)
                row += max(1, -(-cells // width))
            self._starts = starts
            self.virtual_size = Size(width, row)
        else:
            self._starts = []
            self.virtual_size = Size(max(self._cells, default=0), len(self.lines))
        self.refresh()

    def row_of(self, line: int) -> int:
        """The first row ``line`` is drawn on."""
        return self._starts[line] if line < len(self._starts) else line

    def line_at(self, row: int) -> int:
        """The line drawn on ``row``."""
        return bisect_right(self._starts, row) - 1 if self._starts else row

    def matches(self) -> list[int]:
        """Indices of lines whose shown text holds the search text (case-insensitive);
        computed once per search and content."""
        if self._matches is None:
            needle = self.search.lower()
            self._matches = [i for i, line in enumerate(self.lines)
                             if needle in line.lower()] if needle else []
        return self._matches

    def levelled(self) -> list[int]:
        """Indices of lines that read as errors or warnings."""
        return [i for i, entry in enumerate(self.entries) if entry.level]

    def goto(self, line: int) -> None:
        """Stop following, make ``line`` current and centre it."""
        self.follow = False
        self.current = line
        self.scroll_to(y=max(0, self.row_of(line) - self.size.height // 2), animate=False)

    @property
    def top_line(self) -> int:
        return self.line_at(int(self.scroll_offset.y))

    # -- reactions -----------------------------------------------------------
    def watch_search(self) -> None:
        self._matches = None
        self._strips.clear()
        self.refresh()

    def watch_current(self) -> None:
        self._strips.clear()
        self.refresh()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False)

    def _keeping_top_line(self, change) -> None:
        """Apply ``change`` (which moves rows) with the same line on top after it."""
        top = self.top_line
        change()
        if self.follow:
            self.scroll_end(animate=False)
        else:
            self.scroll_to(x=0, y=self.row_of(top), animate=False)

    def watch_wrap(self) -> None:
        self._keeping_top_line(self._relayout)

    def watch_timestamps(self) -> None:
        self._keeping_top_line(self._reshape)

    def on_resize(self) -> None:
        if self.wrap and self.scrollable_content_region.width != self._wrap_width:
            self._keeping_top_line(self._relayout)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Scrolling up to read stops following; F or G (or the end key) resumes it.
        if new < old and new < self.max_scroll_y:
            self.follow = False

    # -- movement: at once, never animated --------------------------------
    def action_scroll_home(self) -> None:
        self.follow = False
        self.scroll_to(x=0, y=0, animate=False)

    def action_scroll_end(self) -> None:
        self.follow = True
        self.scroll_end(animate=False)

    def action_scroll_up(self) -> None:
        self.scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        self.scroll_down(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    # -- drawing -----------------------------------------------------------
    def _line_text(self, index: int) -> Text:
        """Line ``index`` as styled text: cut marks, timestamp, the script's colours,
        then search matches."""
        entry = self.entries[index]
        text = Text(no_wrap=True, end="")
        if entry.cut_before:
            text.append(CUT_MARK, STAMP_STYLE)
        shown = len(text)  # where the shown line (self.lines[index]) starts
        if self.timestamps:
            text.append(entry.stamp, STAMP_STYLE)
        start = len(text)
        text.append(entry.text)
        for begin, end, rendition in entry.spans:
            text.stylize(rich_style(rendition), start + begin, start + end)
        if entry.cut_after:
            text.append(CUT_MARK, STAMP_STYLE)
        needle = self.search.lower()
        if needle:
            lowered = self.lines[index].lower()
            style = CURRENT_STYLE if index == self.current else MATCH_STYLE
            found = lowered.find(needle)
            while found != -1:
                text.stylize(style, shown + found, shown + found + len(needle))
                found = lowered.find(needle, found + len(needle))
        return text

    def _strip(self, index: int, base: Style) -> Strip:
        strip = self._strips.get((index, base))
        if strip is None:
            text = self._line_text(index)
            text.stylize_before(base)
            segments = [Segment(s.text, s.style) for s in text.render(self.app.console)]
            strip = self._strips[index, base] = Strip(segments, text.cell_len)
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        index, part = row, 0
        if self._starts:
            index = self.line_at(row)
            part = row - self._starts[index] if 0 <= index < len(self.lines) else 0
        if not self.lines:
            empty = self.empty_text.splitlines()
            if 0 <= row < len(empty):  # why there is nothing to show
                text = Text(empty[row], style=style + Style(italic=True), no_wrap=True)
                return Strip(list(text.render(self.app.console)), text.cell_len).crop_extend(
                    scroll_x, scroll_x + width, style)
            return Strip.blank(width, style)
        if not 0 <= index < len(self.lines) or (self._starts and row >= self.virtual_size.height):
            return Strip.blank(width, style)
        level = LEVEL_STYLES.get(self.entries[index].level)
        base = style + level if level else style
        if index == self.current:
            base += CURRENT_LINE_STYLE
        strip = self._strip(index, base)
        left = part * self._wrap_width if self._starts else scroll_x
        return strip.crop_extend(left, left + width, base)
