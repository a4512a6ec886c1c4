"""A virtual log view: renders only visible lines, highlights search matches."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

MATCH_STYLE = Style(bgcolor="yellow", color="black")
CURRENT_STYLE = Style(bgcolor="dark_orange", color="black", bold=True)


class LogView(ScrollView, can_focus=True):
    """Lines of a log (already literal-safe), shown with ``render_line`` so a
    50 000-line log costs what the visible 20 lines cost (the Toolong model).

    ``search`` highlights every case-insensitive match; ``current`` is the line of
    the match the reader moved to with n/N. ``follow`` keeps the view at the end.
    """

    BINDINGS = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "End", show=False),
    ]

    search: reactive[str] = reactive("")
    current: reactive[int | None] = reactive(None)
    follow: reactive[bool] = reactive(True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: list[str] = []
        self._width = 0
        self.empty_text = ""  # shown, line by line, while there are no lines

    def set_lines(self, lines: list[str]) -> None:
        """Show ``lines``; appends when they extend what is shown (the usual case
        for a rewrite-whole log that grew), replaces otherwise."""
        old = self.lines
        grew = len(lines) >= len(old) and (not old or lines[len(old) - 1] == old[-1])
        self.lines = list(lines)
        self._width = max((len(line) for line in self.lines), default=0) if not grew else max(
            [self._width, *(len(line) for line in lines[len(old):])]
        )
        self.virtual_size = Size(self._width, len(self.lines))
        if self.follow:
            # The new virtual size takes effect on the next layout.
            self.call_after_refresh(self.scroll_end, animate=False)
        self.refresh()

    def matches(self) -> list[int]:
        """Indices of lines holding the search text (case-insensitive)."""
        needle = self.search.lower()
        if not needle:
            return []
        return [i for i, line in enumerate(self.lines) if needle in line.lower()]

    def goto(self, line: int) -> None:
        """Make ``line`` the current match and centre it."""
        self.follow = False
        self.current = line
        self.scroll_to(y=max(0, line - self.size.height // 2), animate=False)

    def watch_search(self) -> None:
        self.refresh()

    def watch_current(self) -> None:
        self.refresh()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Scrolling up to read stops following; F (or reaching the end) resumes it.
        if new < old and new < self.max_scroll_y:
            self.follow = False

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        style = self.rich_style
        if index >= len(self.lines):
            empty = self.empty_text.splitlines()
            if index < len(empty):  # why there is nothing to show
                text = Text(empty[index], style=style + Style(italic=True), no_wrap=True)
                return Strip(list(text.render(self.app.console)), text.cell_len).crop_extend(
                    scroll_x, scroll_x + width, style)
            return Strip.blank(width, style)
        text = Text(self.lines[index], style=style, no_wrap=True, end="")
        needle = self.search.lower()
        if needle:
            lowered = self.lines[index].lower()
            match_style = CURRENT_STYLE if index == self.current else MATCH_STYLE
            start = lowered.find(needle)
            while start != -1:
                text.stylize(match_style, start, start + len(needle))
                start = lowered.find(needle, start + len(needle))
        segments = [Segment(s.text, s.style) for s in text.render(self.app.console)]
        strip = Strip(segments, text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, style)
