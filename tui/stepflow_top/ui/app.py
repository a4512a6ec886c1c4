"""The Textual app: owns the refresher, schedules refreshes, hands snapshots down.

Data flow (DESIGN.md): file-event hints or the fallback timer → a thread worker
runs ``Refresher.refresh`` (its own read-only connection; it skips the queries
when ``data_version`` did not move) → ``SnapshotReady`` → ``snapshot`` reactive →
screens watching it diff their tables. At most one refresh runs and at most one
more is queued, so a burst of commits coalesces. ``now`` ticks every second so
elapsed times move without queries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from ..live.hints import Hints
from ..live.refresher import Refresher, StoreSnapshot, ViewRequest
from ..store.locate import StorePaths
from .help import HelpScreen

REFRESH_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class SnapshotReady(Message):
    """A refresh finished; ``snapshot`` is None when nothing changed."""

    def __init__(self, snapshot: StoreSnapshot | None) -> None:
        super().__init__()
        self.snapshot = snapshot


class StepflowTop(App):
    """``stepflow-top``: executions → steps → logs, live and read-only."""

    TITLE = "stepflow-top"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("ctrl+r,R", "refresh_now", "Refresh", show=False),
        Binding("plus", "slower", "Slower refresh", show=False, key_display="+"),
        Binding("minus", "faster", "Faster refresh", show=False, key_display="-"),
    ]

    snapshot: reactive[StoreSnapshot | None] = reactive(None, always_update=True)
    now: reactive[datetime] = reactive(datetime.now)
    paused: reactive[bool] = reactive(False)

    def __init__(
        self,
        paths: StorePaths,
        *,
        poll: float | None = None,
        fallback: float = 5.0,
        stall_after: float = 60.0,
        bell: bool = False,
        clock: Callable[[], datetime] = datetime.now,
        watch: bool = True,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.clock = clock
        self.bell_on_failure = bell
        self.stall_after = stall_after
        self.refresher = Refresher(paths, stall_after=stall_after)
        self.request = ViewRequest()
        self.hints = Hints([paths.database_dir], fallback=fallback, poll=poll)
        self._watch_files = watch
        self._refreshing = False
        self._queued: bool | None = None  # None: nothing queued; else its `force`
        self._held: StoreSnapshot | None = None  # arrived while paused
        self._failed_seen: set[str] | None = None

    def on_mount(self) -> None:
        from .executions import ExecutionsScreen

        self.now = self.clock()
        self.push_screen(ExecutionsScreen())
        self.set_interval(1.0, self._tick)
        if self._watch_files:
            self._consume_hints()
        self.request_refresh(force=True)

    def on_unmount(self) -> None:
        self.hints.stop()
        self.refresher.close()

    # -- refresh scheduling ------------------------------------------------
    def request_refresh(self, *, force: bool = False) -> None:
        """Run a refresh now, or once the running one ends (bursts coalesce)."""
        if self._refreshing:
            self._queued = bool(self._queued) or force
            return
        self._refreshing = True
        self._refresh(self.request, force)

    @work(thread=True, group="refresh")
    def _refresh(self, request: ViewRequest, force: bool) -> None:
        self.post_message(SnapshotReady(self.refresher.refresh(request, self.clock(), force=force)))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self._refreshing = False
        if message.snapshot is not None:
            self._notify_failures(message.snapshot)
            if self.paused:
                self._held = message.snapshot
            else:
                self.snapshot = message.snapshot
        if self._queued is not None:
            force, self._queued = self._queued, None
            self.request_refresh(force=force)

    def set_request(self, **changes) -> None:
        """Change what the views show (filter, status, limit, open execution) and
        refresh for it."""
        request = replace(self.request, **changes)
        if request != self.request:
            self.request = request
            self.request_refresh()

    @work(exclusive=True, group="hints")
    async def _consume_hints(self) -> None:
        self.hints.start()
        while True:
            reason = await self.hints.wait()
            if reason == "stopped":
                return
            # Between steps a run can turn stalled without any commit: re-read then.
            live = self.snapshot is not None and any(
                e.stored_status in ("pending", "running") for e in self.snapshot.executions
            )
            self.request_refresh(force=(reason == "timer" and live))
            self.screen.post_message(FilesChanged())

    def watch_folder(self, folder: Path | None) -> None:
        """Also watch ``folder`` for changes (an open execution's log folder)."""
        folders = [self.paths.database_dir] + ([folder] if folder else [])
        self.hints.set_folders(folders)

    def _tick(self) -> None:
        self.now = self.clock()
        if self.hints.poll is None and not self._watch_files:
            return
        if self.snapshot is None or self.snapshot.error:
            # Waiting for the database to appear or become readable again.
            self.request_refresh()

    def _notify_failures(self, snapshot: StoreSnapshot) -> None:
        failed = {e.id: e for e in snapshot.executions if e.stored_status == "failed"}
        if self._failed_seen is None:
            self._failed_seen = set(failed)
            return
        for execution_id in failed.keys() - self._failed_seen:
            name = failed[execution_id].name
            self.notify(f"{name} failed", title="Execution failed", severity="error", markup=False)
            if self.bell_on_failure:
                self.bell()
        self._failed_seen |= failed.keys()

    # -- actions -----------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._held is not None:
            self.snapshot, self._held = self._held, None

    def action_refresh_now(self) -> None:
        self.request_refresh(force=True)

    def action_slower(self) -> None:
        self._step_interval(+1)

    def action_faster(self) -> None:
        self._step_interval(-1)

    def _step_interval(self, direction: int) -> None:
        hints = self.hints
        current = hints.interval
        steps = [s for s in REFRESH_STEPS if (s > current if direction > 0 else s < current)]
        if not steps:
            return
        new = steps[0] if direction > 0 else steps[-1]
        if hints.poll is not None:
            hints.poll = new
        else:
            hints.fallback = new
        kind = "poll" if hints.poll is not None else "fallback refresh"
        self.notify(f"{kind} every {new:g}s", timeout=2)


class FilesChanged(Message):
    """A file-event hint arrived (log views re-check their file)."""
