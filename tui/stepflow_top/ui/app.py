"""The Textual app: owns the refresher, schedules refreshes, hands snapshots down.

Data flow (DESIGN.md): file-event hints or the fallback timer → a thread worker
runs ``Refresher.refresh`` (its own read-only connection; it skips the queries
when the change token did not move) → ``SnapshotReady`` → ``snapshot`` reactive →
screens watching it diff their tables. ``live.schedule.RefreshScheduler`` decides
when a refresh may start (a burst coalesces, a stream is drawn at most 10 times a
second, the writer gets a gap). ``now`` ticks every second so elapsed times move
without queries.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from dataclasses import replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from textual import work
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ..live.health import HealthMonitor, HealthState
from ..live.hints import Hints
from ..live.refresher import Refresher, StoreSnapshot, ViewRequest
from ..live.schedule import FRAME_INTERVAL, ROLLBACK_INTERVAL, RefreshScheduler
from ..live.settings import Settings
from ..store.locate import StorePaths
from ..store.models import Judgement
from ..store.text import literal
from .commands import ExecutionCommands, monitor_commands
from .screens.detail import DetailScreen
from .screens.executions import ExecutionsScreen
from .screens.health import HealthScreen
from .screens.help import HelpScreen
from .screens.log import LogScreen
from .messages import (
    CheckProgress,
    ChecksDone,
    FilesChanged,
    HealthReady,
    OpenExecution,
    OpenLog,
    SnapshotReady,
    WatchFolder,
)

if TYPE_CHECKING:  # the check runners load when a check runs, not at start-up
    from ..live.checks import CheckReport

STREAM_FRAMES = 3  # refreshes in a row, each finding a change soon after the last: a stream


class StepflowTop(App):
    """``stepflow-top``: executions → steps → logs, live and read-only."""

    TITLE = "stepflow-top"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    MODES = {"executions": ExecutionsScreen, "health": HealthScreen}
    COMMANDS = App.COMMANDS | {ExecutionCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("colon", "go_to", "Go to an execution", show=False, key_display=":"),
        Binding("1", "switch_mode('executions')", "Executions", show=False),
        Binding("2", "switch_mode('health')", "Health"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("ctrl+r,R", "refresh_now", "Refresh", show=False),
        Binding("plus", "slower", "Slower refresh", show=False, key_display="+"),
        Binding("minus", "faster", "Faster refresh", show=False, key_display="-"),
    ]

    # Screens watch these and update only what changed: `var`, because a repainting
    # reactive on the App would repaint the whole screen on every tick.
    snapshot: var[StoreSnapshot | None] = var(None, always_update=True)
    now: var[datetime] = var(datetime.now)
    paused: var[bool] = var(False)
    held: var[StoreSnapshot | None] = var(None)  # newer data that arrived while paused
    health: var[HealthState | None] = var(None)
    integrity: var[CheckReport | None] = var(None)
    integrity_progress: var[tuple[float, str] | None] = var(None)

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
        integrity_every: float | None = None,
        persist_history: bool = True,
        refresher: Refresher | None = None,
        writer_tz: tzinfo | None | str = "infer",
        first_snapshot: StoreSnapshot | None = None,
        interval_from_settings: bool = False,
        on_hang_up: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.clock = clock
        self.bell_on_failure = bell
        self.stall_after = stall_after
        self.refresher = refresher or Refresher(paths, stall_after=stall_after, writer_tz=writer_tz)
        self._first_snapshot = first_snapshot
        self._on_hang_up = on_hang_up
        self.settings = Settings.load()
        self.request = self.settings.view_request()
        if self.settings.interval and interval_from_settings:
            fallback = self.settings.interval
        self.hints = Hints([paths.database_dir], fallback=fallback, poll=poll)
        self._watch_files = watch
        self.scheduler = RefreshScheduler()
        self.health_monitor = HealthMonitor(paths.database, persist=persist_history,
                                            probe=self.refresher.probe)
        self._tick_held = False  # a clock tick waits for the refresh on its way (_tick)
        self._streak = 0  # refreshes in a row that were part of a stream
        self.integrity_every = integrity_every
        self._checking = False
        self._cancel_checks = threading.Event()

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._hang_up)
        # kill, systemd and timeout send SIGTERM: leave as `q` does (terminal restored,
        # the caller's clean-up runs after run() returns).
        loop.add_signal_handler(signal.SIGTERM, self.exit)
        self.now = self.clock()
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.watch(self, "theme", self._keep_theme, init=False)
        self.switch_mode("executions")
        self.set_interval(1.0, self._tick)
        if self.integrity_every:
            self.set_interval(self.integrity_every, lambda: self.start_checks("quick"))
        if self._watch_files:
            self._consume_hints()
        first, self._first_snapshot = self._first_snapshot, None
        if first is not None and first.request == self.request:
            self.scheduler.request()
            self.scheduler.start()
            self.post_message(SnapshotReady(first))
            self._first_health(first)
        else:  # none, or read for another view (a status filter from the settings)
            self.request_refresh(force=True)

    def _keep_theme(self, theme: str) -> None:
        """The theme chosen in the command palette sticks between sessions."""
        if theme != self.settings.theme:
            self.settings.theme = theme
            self.settings.save()

    def on_unmount(self) -> None:
        self.hints.stop()
        self.cancel_checks()
        self.refresher.close()
        self.health_monitor.close()

    # -- refresh scheduling ------------------------------------------------
    def request_refresh(self, *, force: bool = False) -> None:
        """Refresh as soon as the scheduler allows (``live.schedule``: bursts coalesce,
        a stream is drawn at a bounded frame rate, the writer gets its gap)."""
        self._arm(self.scheduler.request(force=force))

    def _arm(self, delay: float | None) -> None:
        if delay is None:
            return
        if delay <= 0:
            self._start_refresh()
        else:
            self.set_timer(delay, self._start_refresh)

    def _start_refresh(self) -> None:
        self._refresh(self.request, self.scheduler.start(), self.held or self.snapshot)

    # A description of our own: without one, Textual repr()s the arguments (a whole
    # snapshot) on the UI thread for every refresh, ~2 ms a frame under a stream.
    @work(thread=True, group="refresh", exit_on_error=False, description="refresh")
    def _refresh(self, request: ViewRequest, force: bool, shown: StoreSnapshot | None) -> None:
        # The health reading is taken here too, from the refresh's own probe sample:
        # both land in one frame, and a refresh costs no second worker.
        snapshot = self.refresher.refresh(request, self.clock(), force=force)
        health = self._read_health(snapshot, shown)
        self.post_message(SnapshotReady(snapshot, health))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        # Refreshes that each find a change, each soon after the last: a stream, read
        # again at the frame rate with the file watch stopped (live.hints), until a
        # refresh finds nothing new.
        snapshot = message.snapshot
        changed = snapshot is not None and not snapshot.error and self.scheduler.in_stream
        self._streak = self._streak + 1 if changed else 0
        self.hints.streaming = self._streak >= STREAM_FRAMES
        self._arm(self.scheduler.finish())
        if self.hints.streaming:
            self._hinted()
        if self._tick_held and not self.paused:
            self._tick_held = False
            self.now = self.clock()
        if snapshot is not None:
            self.scheduler.min_interval = (
                FRAME_INTERVAL if snapshot.error or snapshot.journal_mode == "wal"
                else ROLLBACK_INTERVAL)
            self._notify_failures(snapshot)
            shown = self.snapshot.request if self.snapshot else None
            if self.paused and snapshot.request == shown:
                self.held = snapshot
            else:
                self.snapshot = snapshot
        if message.health is not None:
            self.post_message(message.health)

    # -- health --------------------------------------------------------------
    @work(thread=True, group="health", exit_on_error=False, description="first health")
    def _first_health(self, first: StoreSnapshot) -> None:
        """The health reading of the snapshot read before the app started."""
        self.post_message(self._read_health(first, None))

    def _read_health(self, snapshot: StoreSnapshot | None, shown: StoreSnapshot | None
                     ) -> HealthReady:
        """A health reading after a refresh (in its worker thread): from the probe
        sample the refresh took, also when it found nothing changed (else the probe is
        asked); the journal mode is the new snapshot's, else the one ``shown``."""
        latest = snapshot if snapshot is not None else shown
        journal = None if latest is None or latest.error else latest.journal_mode
        taken = snapshot.sample if snapshot is not None else self.refresher.last_sample
        return HealthReady(self.health_monitor.sample(journal, taken))

    def on_health_ready(self, message: HealthReady) -> None:
        if not self.paused:
            self.health = message.state
        for warning in self.health_monitor.raised(message.state):
            self.notify(warning.message, title="Database health", severity="warning",
                        markup=False, timeout=10)

    def start_checks(self, kind: str) -> None:
        """Run checks off the UI thread (``live.checks.run_checks``): ``quick``
        (quick_check + foreign keys), ``full`` (integrity_check + foreign keys) or
        ``consistency`` (StepFlow rows and log files), on a private copy. One run at a
        time; ``x`` cancels it."""
        if self._checking:
            self.notify("a check is already running (x cancels it)", timeout=3)
            return
        self._checking = True
        self._cancel_checks.clear()
        self.integrity_progress = (0.0, "starting")
        sample = self.health.sample if self.health else None
        self._run_checks(kind, sample)

    def cancel_checks(self) -> None:
        self._cancel_checks.set()

    @work(thread=True, group="checks", exit_on_error=False)
    def _run_checks(self, kind: str, sample) -> None:
        from ..live.checks import run_checks

        def progress(fraction: float, phrase: str) -> None:
            self.post_message(CheckProgress(fraction, phrase))

        report = run_checks(
            self.paths, kind, now=datetime.now(),
            writer_attached=sample.writer_attached if sample is not None else None,
            sample=sample, progress=progress, cancel=self._cancel_checks)
        self.post_message(ChecksDone(report))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's failure lands: a notice, and the scheduling it held
        released (the monitor keeps running; a bug must not freeze the screen)."""
        if event.state is not WorkerState.ERROR:
            return
        worker, error = event.worker, event.worker.error
        self.notify(f"{worker.group} failed: {type(error).__name__}: {literal(error)}",
                    title="Internal error (please report it)", severity="error",
                    markup=False, timeout=15)
        if worker.group == "refresh":  # and no stream is read on: the watch takes over
            self._streak, self.hints.streaming = 0, False
            self._arm(self.scheduler.finish())
        elif worker.group == "checks":
            self._checking = False
            self.integrity_progress = None

    def on_check_progress(self, message: CheckProgress) -> None:
        if self._checking:
            self.integrity_progress = (message.fraction, message.phrase)

    def on_checks_done(self, message: ChecksDone) -> None:
        from ..live.checks import summary
        from ..wal.results import State

        self._checking, self.integrity_progress = False, None
        self.integrity = report = message.report
        if (state := report.state) is State.CANCELLED:
            self.notify("check cancelled", title="Database health", timeout=3)
        elif state is not State.OK:
            self.notify(f"{state.value}: {literal(summary(report))} (press 2 for details)",
                        title="Database health", markup=False, timeout=15,
                        severity="error" if state is State.CRITICAL else "warning")
            if self.bell_on_failure and state is State.CRITICAL:
                self.bell()

    def set_request(self, **changes) -> None:
        """Change what the views show (filter, status, limit, open execution) and
        refresh for it. The status filter sticks between sessions."""
        request = replace(self.request, **changes)
        if request != self.request:
            if request.status != self.request.status:
                self.settings.status = request.status.value if request.status else None
                self.settings.save()
            self.request = request
            self.request_refresh()

    @work(exclusive=True, group="hints")
    async def _consume_hints(self) -> None:
        self.hints.start()
        while True:
            reason = await self.hints.wait()
            if reason == "stopped":
                return
            self._hinted()

    def _hinted(self) -> None:
        # A hint is confirmed by the change token; a run turning stalled needs no
        # query (effective status is a function of the clock, which ticks).
        self.request_refresh()
        try:
            self.screen.post_message(FilesChanged())
        except ScreenStackError:  # between modes: no screen to tell
            pass

    def on_watch_folder(self, message: WatchFolder) -> None:
        """A screen asks for its folder to be watched too (the log screen: its step's
        log folder), or for none (``folder`` None)."""
        self.watch_folder(message.folder)

    def watch_folder(self, folder: Path | None) -> None:
        """Also watch ``folder`` for changes (an open execution's log folder)."""
        folders = [self.paths.database_dir] + ([folder] if folder else [])
        self.hints.set_folders(folders)

    def _tick(self) -> None:
        if not self.paused:  # pause freezes the screen, durations included
            # A refresh on its way is drawn within a frame: the clock moves with it,
            # in one frame, not in a frame of its own just before (under a stream of
            # commits that was one redraw of every running row a second). Never
            # twice in a row, so a slow refresh cannot stop the clock.
            if (self.scheduler.running or self.scheduler.armed) and not self._tick_held:
                self._tick_held = True
            else:
                self._tick_held = False
                self.now = self.clock()
        if self.hints.poll is None and not self._watch_files:
            return
        if self.snapshot is None or self.snapshot.error:
            # Waiting for the database to appear or become readable again.
            self.request_refresh()

    def _notify_failures(self, snapshot: StoreSnapshot) -> None:
        # From the change feed, not the window: a run failing outside the filter or
        # the loaded page is news too, and an old failure scrolling into view is not.
        if snapshot.replaced:
            self.notify(f"{literal(self.paths.database)} was replaced by a new file: "
                        "showing the new one", title="Database replaced", severity="warning",
                        markup=False, timeout=10)
        for event in snapshot.finished:
            if event["status"] == "failed":
                step = f" at step {literal(event['failed_step'])}" if event["failed_step"] else ""
                self.notify(f"{literal(event['name'])} failed{step}", title="Execution failed",
                            severity="error", markup=False)
                if self.bell_on_failure:
                    self.bell()

    @property
    def store_labels(self) -> tuple[str, ...]:
        """Short names of the stores watched (``StorePaths.label``): one here,
        several in ``ui.several``; the Store column and the health tabs show them."""
        return (self.paths.label,)

    def judgement(self) -> Judgement:
        """What effective statuses on screen are judged by now: the app's clock in the
        writer's zone, the stall threshold and the writer's attachment."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.error:
            return Judgement(self.now, self.stall_after)
        return snapshot.judgement(self.now)

    def _hang_up(self) -> None:
        """The terminal went away (an SSH drop). Nobody sees a graceful exit, and
        Textual's restoring of a terminal that is gone can block for ever (seen:
        its writer queue full on a dead pty), so: the caller's clean-up (--demo's
        writer and folder), then leave at once. The probe exits on its closed stdin."""
        try:
            if self._on_hang_up is not None:
                self._on_hang_up()
        finally:
            os._exit(128 + signal.SIGHUP)

    # -- command palette -----------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from monitor_commands(self)

    def on_open_execution(self, message: OpenExecution) -> None:
        """Screens and the palette ask; the App navigates (no screen imports another)."""
        if not isinstance(self.screen, ExecutionsScreen):
            self.switch_mode("executions")
        self.push_screen(DetailScreen(message.execution_id))

    def on_open_log(self, message: OpenLog) -> None:
        self.push_screen(LogScreen(message.execution, message.step, message.path))

    # -- actions -----------------------------------------------------------
    def action_go_to(self) -> None:
        """``:`` as in k9s: the command palette, which finds any execution in the store."""
        self.action_command_palette()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self.held is not None:
            self.snapshot, self.held = self.held, None

    def action_refresh_now(self) -> None:
        self.request_refresh(force=True)

    def action_slower(self) -> None:
        self._step_interval(+1)

    def action_faster(self) -> None:
        self._step_interval(-1)

    def _step_interval(self, direction: int) -> None:
        new = self.hints.step_interval(direction)
        if new is not None:
            kind = "poll" if self.hints.poll is not None else "fallback refresh"
            self.notify(f"{kind} every {new:g}s", timeout=2)
            self.settings.interval = new
            self.settings.save()
