"""Screen 3: a step's log, tail-following, with colours, search and error jumps."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import Counter
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from ... import formatting
from ...store.loglines import MAX_LINE_CHARS, Level, LogLine
from ...store.logs import (
    NEVER_WRITTEN,
    LogRead,
    LogRefused,
    log_version,
    open_log,
    read_log,
)
from ...store.models import FINAL_EXECUTION, Execution, Step, StepView
from ...store.text import literal
from ..messages import FilesChanged, WatchFolder
from ..progress import progress_cell, timing
from ..widgets import StoreBar, TextPanel
from ..widgets.log_view import LogView

DEFAULT_PAGER = "less -R"


class LogScreen(Screen):
    """The log file of one step. The service rewrites it whole on each save of the
    step's row; the view re-reads it when its (inode, size, mtime) changes."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("n", "next_match", "Next match"),
        Binding("N", "previous_match", "Previous match", show=False),
        Binding("e", "next_level", "Next error"),
        Binding("E", "previous_level", "Previous error", show=False),
        Binding("g", "top", "Top", show=False),
        Binding("G", "end", "End (follow)", show=False),
        Binding("j", "line_down", "Down a line", show=False),
        Binding("k", "line_up", "Up a line", show=False),
        Binding("F", "toggle_follow", "Follow"),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("t", "toggle_timestamps", "Times"),
        Binding("o", "pager", "Pager"),
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
        self._levels: Counter[Level] = Counter()
        self._cut_lines = False

    def compose(self) -> ComposeResult:
        yield StoreBar()
        yield TextPanel(id="step-summary")
        yield Input(placeholder="search — Enter finds, n/N next/previous, Esc closes",
                    id="search", classes="hidden")
        yield LogView(id="log")
        yield TextPanel(id="log-state")
        yield Footer()

    def on_mount(self) -> None:
        self.post_message(WatchFolder(self.path.parent))
        self.watch(self.app, "snapshot", self._step_changed)
        self.watch(self.app, "now", self._tick)
        for name in ("follow", "wrap", "timestamps", "current", "search"):
            self.watch(self.view, name, self._show_state, init=False)
        self._show_summary()
        self._load()
        self.view.focus()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    @property
    def ended(self) -> bool:
        """The step will not be saved again: finished, or inside a final execution."""
        return self.step.finished or self.execution.stored_status in FINAL_EXECUTION

    # -- reading -----------------------------------------------------------
    def on_files_changed(self, _message: FilesChanged) -> None:
        self._check_file()

    def _tick(self, _now=None) -> None:
        view = self._view()
        if view.status == "running":  # its elapsed time moves
            self._show_summary(view)
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
        version = log_version(self.path)
        result = read_log(self.path, executions_dir=self.app.paths.executions_dir,
                          ended=self.ended)
        # Shaped here (colours, levels), off the UI thread.
        self.app.call_from_thread(self._apply, version, result, result.shaped)

    def _apply(self, version: tuple[int, int, int] | None, result: LogRead,
               shaped: tuple[LogLine, ...]) -> None:
        self._reading = False
        self._read, self._version = result, version
        self._levels = Counter(line.level for line in shaped if line.level)
        self._cut_lines = any(line.cut_before or line.cut_after for line in shaped)
        self.view.empty_text = result.missing or ("(the log file is empty)"
                                                  if not result.raw else "")
        self.view.set_lines(shaped)
        self._show_state()

    def _step_changed(self, _value=None) -> None:
        snapshot = self.app.snapshot
        if snapshot is None or snapshot.detail is None:
            return
        detail, ended = snapshot.detail, self.ended
        if detail.execution.id != self.execution.id:
            return
        self.execution = detail.execution
        newer = self._next_running(detail, snapshot)
        if newer is not None:  # following the run: the service started the next step
            self.step, self.path = newer, detail.log_paths[newer.id]
            self._read = self._version = None
            self.notify(f"following step {newer.index}: {literal(newer.name)}", timeout=3,
                        markup=False)
            self._show_summary()
            self._load()
            return
        step = next((s for s in detail.steps if s.id == self.step.id), None)
        if step is not None and step != self.step:
            self.step = step
            self._check_file()
        # Its effective status may move with no change to its row (the run ended, the
        # service died): the header is drawn again with every new detail.
        self._show_summary()
        if self.ended != ended:  # what a missing file means has changed
            self._load()

    def _next_running(self, detail, snapshot) -> Step | None:
        """With follow on, the step the service runs now if it is a later one than this
        screen's (the service ends a step by starting the next: STEPFLOW_STORE.md)."""
        if not self.view.follow:
            return None
        running = [v.step for v in detail.step_views(snapshot.judgement(self.app.now))
                   if v.status == "running"]
        if running and running[-1].index > self.step.index:
            return running[-1]
        return None

    def _show_summary(self, view: StepView | None = None) -> None:
        """Execution › step, status, progress, elapsed against estimated; then the
        description its ``META:`` markers give, and its error."""
        step, now, view = self.step, self.app.now, view or self._view()
        meta = step.meta
        panel = self.query_one("#step-summary", TextPanel)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{literal(self.execution.name)} › ", "dim")
        text.append(f"step {step.index}: {literal(step.name)}  ", "bold")
        text.append(view.label, panel.status_style(view.status))
        if view.inferred:
            text.append(f" ({literal(view.inferred)})", "dim")
        progress = progress_cell(meta, view.status)
        if progress:
            text.append("  ")
            text.append_text(progress)
        text.append("  ")
        text.append_text(timing(view, now))
        if step.exit_code is not None:
            text.append(f"  exit {step.exit_code}", "bold red" if step.exit_code else "")
        if meta.description:
            text.append(f"\n{literal(meta.description)}", "italic")
        if step.error_message:
            text.append(f"\nerror: {literal(step.error_message)}", "bold red")
        panel.update(text)

    def _view(self) -> StepView:
        """The step as the detail screen shows it: its effective status (a step the
        service ended implicitly, or whose service is gone), from the open run's
        detail; the row's own word until that detail is read."""
        snapshot = self.app.snapshot
        detail = snapshot.detail if snapshot is not None else None
        if detail is not None and detail.execution.id == self.execution.id:
            for view in detail.step_views(self.app.judgement()):
                if view.step.id == self.step.id:
                    return view
        return StepView(self.step, self.step.status)

    def _show_state(self, _value=None) -> None:
        """One line, most urgent first (it is cut at the screen's width): the search
        counter, following, why something is missing or cut, then sizes and path."""
        read, view = self._read, self.view
        parts: list[tuple[str, str]] = []
        if view.search:
            matches = view.matches()
            at = matches.index(view.current) + 1 if view.current in matches else 0
            parts.append((f"{at}/{len(matches)} for {literal(view.search)!r}", "bold"))
        parts.append(("following", "") if view.follow else ("not following (F follows)", ""))
        if read is None:
            parts.append(("reading…", ""))
        elif read.missing:
            parts.append((read.missing.splitlines()[0], "yellow"))
        else:
            if self.step.status == "running" and self.ended:
                parts.append((f"{NEVER_WRITTEN}: its end is missing", "yellow"))
            if read.first_cut:
                parts.append(("one line is longer than the part read: its start is cut",
                              "yellow"))
            size = f"{len(read.raw)} lines, {formatting.size(read.size)}"
            if read.skipped_bytes and not read.first_cut:
                size += f" (the first {formatting.size(read.skipped_bytes)} not shown)"
            parts.append((size, ""))
            if self._cut_lines:
                parts.append((f"lines cut at {MAX_LINE_CHARS:,} characters (…)", ""))
            errors, warnings = self._levels[Level.ERROR], self._levels[Level.WARNING]
            if errors or warnings:
                parts.append((f"{errors} error, {warnings} warning lines (e/E)", ""))
        parts.append((formatting.cut_middle(literal(self.path), 60), ""))
        text = Text(no_wrap=True, overflow="ellipsis", style="dim")
        for index, (part, style) in enumerate(parts):
            text.append(("  ·  " if index else "") + part, style)
        self.query_one("#log-state", TextPanel).update(text)

    # -- actions -----------------------------------------------------------
    def action_back(self) -> None:
        """Esc closes the search box, then clears the search, then goes back."""
        field = self.query_one("#search", Input)
        if not field.has_class("hidden"):
            field.add_class("hidden")
            self.set_focus(self.view)
        elif self.view.search:
            self.view.search, self.view.current = "", None
        else:
            self.app.pop_screen()

    def action_search(self) -> None:
        field = self.query_one("#search", Input)
        field.remove_class("hidden")
        # At once, not after a refresh as focus() does: the next key typed goes to
        # the box, not to this screen's bindings.
        self.set_focus(field)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.view.search = event.value
        event.input.add_class("hidden")
        self.set_focus(self.view)
        self._move_to(self.view.matches(), +1, include_current=True, what="match")

    def action_next_match(self) -> None:
        self._move_to(self.view.matches(), +1, what="match")

    def action_previous_match(self) -> None:
        self._move_to(self.view.matches(), -1, what="match")

    def action_next_level(self) -> None:
        self._move_to(self.view.levelled(), +1, what="error or warning")

    def action_previous_level(self) -> None:
        self._move_to(self.view.levelled(), -1, what="error or warning")

    def _move_to(self, lines: list[int], direction: int, *, what: str,
                 include_current: bool = False) -> None:
        """Go to the next (or previous) of ``lines`` from the current line, wrapping
        round at the ends with a notice."""
        view = self.view
        if not lines:
            if what != "match":
                self.notify(f"no {what} lines", timeout=2)
            elif view.search:
                self.notify(f"no match for {literal(view.search)!r}", timeout=2, markup=False)
            return
        here = view.current if view.current is not None else view.top_line
        if direction > 0:
            ahead = [m for m in lines if m > here or (include_current and m == here)]
            target, wrapped = (ahead[0], False) if ahead else (lines[0], True)
        else:
            behind = [m for m in lines if m < here]
            target, wrapped = (behind[-1], False) if behind else (lines[-1], True)
        if wrapped:
            self.notify("passed the end: continued from the top" if direction > 0
                        else "passed the top: continued from the end", timeout=2)
        view.goto(target)

    def action_top(self) -> None:
        self.view.action_scroll_home()

    def action_end(self) -> None:
        self.view.action_scroll_end()

    def action_line_down(self) -> None:
        self.view.action_scroll_down()

    def action_line_up(self) -> None:
        self.view.action_scroll_up()

    def action_toggle_follow(self) -> None:
        self.view.follow = not self.view.follow

    def action_toggle_wrap(self) -> None:
        self.view.wrap = not self.view.wrap

    def action_toggle_timestamps(self) -> None:
        self.view.timestamps = not self.view.timestamps

    def action_pager(self) -> None:
        """The whole file in ``$PAGER`` (default ``less -R``), given on its standard
        input from a descriptor opened the safe way (``open_log``), so the pager
        reads the file that was checked, never a path that could be swapped."""
        try:
            command = shlex.split(os.environ.get("PAGER") or DEFAULT_PAGER)
        except ValueError as exc:
            self.notify(f"cannot read $PAGER: {exc}", severity="error", timeout=5, markup=False)
            return
        try:
            fd = open_log(self.path, executions_dir=self.app.paths.executions_dir)
        except FileNotFoundError:
            self.notify("there is no log file to page", severity="warning", timeout=3)
            return
        except LogRefused as exc:
            self.notify(str(exc), severity="warning", timeout=4, markup=False)
            return
        except OSError as exc:
            self.notify(f"cannot open the log: {exc.strerror or exc}", severity="error",
                        timeout=4, markup=False)
            return
        try:
            with self.app.suspend():
                subprocess.run(command, stdin=fd, check=False)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to a pager", severity="warning",
                        timeout=3)
        except OSError as exc:
            self.notify(f"cannot run the pager {literal(command[0])!r}: "
                        f"{exc.strerror or exc} (set $PAGER)", severity="error", timeout=5,
                        markup=False)
        finally:
            os.close(fd)

    def action_copy_path(self) -> None:
        self.app.copy_to_clipboard(str(self.path))
        self.notify("copied the log path", timeout=2)
