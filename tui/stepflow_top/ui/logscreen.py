"""Screen 3: a step's log, tail-following, with search."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from .. import formatting
from ..store.logs import LogRead, log_version, read_log
from ..store.models import Execution, Step, step_label
from ..store.text import literal
from .app import FilesChanged
from .bar import STEP_STYLES, StoreBar
from .logview import LogView
from .widgets import TextPanel


class LogScreen(Screen):
    """The log file of one step. The service rewrites it whole on each save of the
    step's row; the view re-reads it when its (inode, size, mtime) changes."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("n", "next_match", "Next"),
        Binding("N", "previous_match", "Prev"),
        Binding("F", "toggle_follow", "Follow"),
        Binding("y", "copy_path", "Copy path", show=False),
    ]

    def __init__(self, execution: Execution, step: Step, path: Path) -> None:
        super().__init__()
        self.execution = execution
        self.step = step
        self.path = path
        self._version: tuple[int, int, int] | None = None
        self._read: LogRead | None = None
        self._reading = False

    def compose(self) -> ComposeResult:
        yield StoreBar()
        yield TextPanel(id="step-summary")
        yield Input(placeholder="search — Enter finds, n/N next/previous, Esc closes",
                    id="search", classes="hidden")
        yield LogView(id="log")
        yield TextPanel(id="log-state")
        yield Footer()

    def on_mount(self) -> None:
        self.app.watch_folder(self.path.parent)
        self.watch(self.app, "snapshot", self._step_changed)
        self.watch(self.app, "now", self._check_file)
        self._show_summary()
        self._load()
        self.query_one(LogView).focus()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    # -- reading -----------------------------------------------------------
    def on_files_changed(self, _message: FilesChanged) -> None:
        self._check_file()

    def _check_file(self, _value=None) -> None:
        if log_version(self.path) != self._version or self._read is None:
            self._load()

    def _load(self) -> None:
        if not self._reading:
            self._reading = True
            self._read_worker()

    @work(thread=True, exclusive=True, group="log")
    def _read_worker(self) -> None:
        result = read_log(self.path)
        self.app.call_from_thread(self._apply, result)

    def _apply(self, result: LogRead) -> None:
        self._reading = False
        self._read = result
        self._version = result.version if result.missing is None else None
        self.view.empty_text = result.missing or ("(the log file is empty)"
                                                  if not result.lines else "")
        self.view.set_lines(list(result.lines))
        self._show_state()

    def _step_changed(self, _value=None) -> None:
        snapshot = self.app.snapshot
        if snapshot is None or snapshot.detail is None:
            return
        step = next((s for s in snapshot.detail.steps if s.id == self.step.id), None)
        if step is not None and step != self.step:
            self.step = step
            self._show_summary()
            self._check_file()

    def _show_summary(self) -> None:
        step, now = self.step, self.app.now
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{literal(self.execution.name)} › ", "dim")
        text.append(f"step {step.index}: {literal(step.name)}  ", "bold")
        text.append(step_label(step.status), STEP_STYLES.get(step.status, ""))
        text.append(f"  {formatting.duration(step.duration(now))}")
        if step.exit_code is not None:
            text.append(f"  exit {step.exit_code}", "bold red" if step.exit_code else "")
        if step.error_message:
            text.append(f"\nerror: {literal(step.error_message)}", "bold red")
        self.query_one("#step-summary", TextPanel).update(text)

    def _show_state(self) -> None:
        read, view = self._read, self.view
        text = Text(no_wrap=True, overflow="ellipsis", style="dim")
        if read is None:
            text.append("reading…")
        elif read.missing:
            text.append(read.missing.splitlines()[0], "yellow")
        else:
            text.append(f"{len(read.lines)} lines, {formatting.size(read.size)}")
            if read.skipped_bytes:
                text.append(f" (the first {formatting.size(read.skipped_bytes)} not shown)")
        text.append("  ·  following" if view.follow else "  ·  not following (F follows)")
        if view.search:
            text.append(f"  ·  {len(view.matches())} matches for {literal(view.search)!r}")
        text.append(f"  ·  {literal(self.path)}")
        self.query_one("#log-state", TextPanel).update(text)

    # -- actions -----------------------------------------------------------
    def action_back(self) -> None:
        """Esc closes the search box, then clears the search, then goes back."""
        field = self.query_one("#search", Input)
        if not field.has_class("hidden"):
            field.add_class("hidden")
            self.view.focus()
        elif self.view.search:
            self.view.search, self.view.current = "", None
            self._show_state()
        else:
            self.app.pop_screen()

    def action_search(self) -> None:
        field = self.query_one("#search", Input)
        field.remove_class("hidden")
        field.focus()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.view.search = event.value
        event.input.add_class("hidden")
        self.view.focus()
        self._move_match(+1, include_current=True)

    def action_next_match(self) -> None:
        self._move_match(+1)

    def action_previous_match(self) -> None:
        self._move_match(-1)

    def _move_match(self, direction: int, include_current: bool = False) -> None:
        view = self.view
        matches = view.matches()
        if not matches:
            if view.search:
                self.notify(f"no match for {literal(view.search)!r}", timeout=2, markup=False)
            self._show_state()
            return
        here = view.current if view.current is not None else int(view.scroll_offset.y)
        if direction > 0:
            ahead = [m for m in matches if m > here or (include_current and m == here)]
            target = ahead[0] if ahead else matches[0]
        else:
            behind = [m for m in matches if m < here]
            target = behind[-1] if behind else matches[-1]
        view.goto(target)
        self._show_state()

    def action_toggle_follow(self) -> None:
        self.view.follow = not self.view.follow
        self._show_state()

    def action_copy_path(self) -> None:
        self.app.copy_to_clipboard(str(self.path))
        self.notify("copied the log path", timeout=2)
