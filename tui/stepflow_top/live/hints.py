"""Hints that the store may have changed: watchfiles events, else a timer.

A hint is only a hint: the refresher confirms it with the change token (the probe's
``-shm`` header and file stats) before it queries anything. Watching is non-recursive
on the database folder (a commit modifies ``-wal``, a checkpoint the database file;
``-shm`` is never reported, SQLITE_WAL.md §7) plus any extra folders a view asks for
(an open execution's log folder).

watchfiles' Rust loop looks for events every ``step`` milliseconds and takes the GIL
each time, and it hands over a change only after a step that saw no newer one
(watchfiles src/lib.rs, ``RustNotify.watch``), so a commit is reported one to two
steps after it happens: the step trades latency against idle CPU. Measured with
tests/benchmarks/bench_live.py, commit to event p50 and idle CPU of the TUI: step
10 ms: 17 ms, 0.95 % of a core; 15 ms: 25 ms, 0.75 %; 20 ms: 33 ms, 0.60 % (the
watching thread alone, from /proc/PID/task: 0.55 % at 15 ms, 0.30 % at 25 ms). At
7 ms, events come 14 ms after the commit (p50), and the TUI draws a commit made every
0.6 s 31 ms after it against 43 ms at 10 ms, for 6.2 % of a core against 5.8 % over
those commits (tests/benchmarks/bench_stream.py --only quiet, medians of 3 runs side
by side).

So the step follows the store: ``ACTIVE_STEP_MS`` while it changes, and
``IDLE_STEP_MS`` once ``HEARTBEAT_MS`` passed without a change. A change seen at the
idle step is reported as usual and switches to the active step; the watcher is started
anew for each switch, and a hint is given with every switch, so a commit made while it
starts is read too.

Under a stream nothing is watched. While the consumer says the changes come faster than
it draws them (``streaming``; the TUI: refreshes that each found a change, each started
within ``live.schedule.STREAM_GAP`` of the one before), it reads again by itself at its
frame rate, and the watch would only cost: at 200 saves a second, inotify woke the
watching thread about 580 times a second (voluntary context switches, /proc/PID/task),
and each report cost the event loop a thread hop (tests/benchmarks/bench_stream.py:
about two points of a core). Reports alone cannot tell a stream: the close of a
read-only session is reported as ``-wal`` and ``-shm`` modified (seen with watchfiles
1.3 on Linux), so each commit is reported once more for every monitor that reads it.
When the consumer's stream ends, the watch starts again with a hint, for whatever
happened while nothing was watched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import watchfiles

WATCH_DEBOUNCE_MS = 200
ACTIVE_STEP_MS = 7  # while the store changes: see the module docstring for the trade-off
IDLE_STEP_MS = 25  # after HEARTBEAT_MS without a change
HEARTBEAT_MS = 5000  # watchfiles' own default; how often folders are checked for a new
#   identity, and how long without a change makes the store idle
MISSING_DIR_RETRY_S = 1.0
INTERVAL_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds: the timer's choices


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        stat = folder.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


class Hints:
    """An async source of "something may have changed" hints.

    ``await wait()`` returns ``"event"`` after a filesystem event, ``"timer"`` when
    ``fallback`` seconds passed with none (it covers missed events), or, with
    ``poll`` set, ``"timer"`` every ``poll`` seconds and never ``"event"`` (for
    filesystems without inotify). Call ``start()`` inside a running event loop and
    ``stop()`` when done.
    """

    def __init__(
        self, folders: list[Path], *, fallback: float = 5.0, poll: float | None = None,
        step_ms: int = ACTIVE_STEP_MS, idle_step_ms: int = IDLE_STEP_MS,
    ) -> None:
        self.folders = list(folders)
        self.fallback = fallback
        self.poll = poll
        self.step_ms = step_ms  # watchfiles' step while the store changes
        self.idle_step_ms = idle_step_ms  # and once it has been quiet for HEARTBEAT_MS
        self.active = False  # a change was seen within HEARTBEAT_MS
        self._streaming = False
        self._watching = asyncio.Event()  # set unless the consumer is in a stream
        self._watching.set()
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._watcher_stop = asyncio.Event()  # the running watcher's own (see _watch)
        self._rearm = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def interval(self) -> float:
        """Seconds between timer hints."""
        return self.poll if self.poll is not None else self.fallback

    @property
    def streaming(self) -> bool:
        """Set by the consumer while the changes it reads come faster than it draws
        them and it reads again by itself: nothing is watched (from the next report
        on) until it is cleared, which gives a hint."""
        return self._streaming

    @streaming.setter
    def streaming(self, value: bool) -> None:
        self._streaming = value
        if value:
            self._watching.clear()
        else:
            self._watching.set()

    def start(self) -> None:
        if self.poll is None and self._task is None:
            self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        self._stop.set()
        self._watching.set()
        self._watcher_stop.set()
        self._changed.set()

    def set_interval(self, seconds: float) -> None:
        """Change the timer's interval (the fallback's, or polling's) from now on."""
        if self.poll is not None:
            self.poll = seconds
        else:
            self.fallback = seconds
        self._rearm.set()

    def step_interval(self, direction: int) -> float | None:
        """The timer's interval one of ``INTERVAL_STEPS`` longer (``direction`` > 0) or
        shorter, set; None when there is none further that way."""
        current = self.interval
        steps = [s for s in INTERVAL_STEPS if (s > current if direction > 0 else s < current)]
        if not steps:
            return None
        self.set_interval(steps[0] if direction > 0 else steps[-1])
        return self.interval

    def set_folders(self, folders: list[Path]) -> None:
        """Watch these folders from now on (restarts the watcher when they differ)."""
        if list(folders) == self.folders:
            return
        self.folders = list(folders)
        if self._task is not None:
            self._task.cancel()  # sets that watcher's own stop event (see _watch)
            self._task = None
            self.start()

    async def wait(self) -> str:
        """Wait for the next hint; see the class docstring for the values. A new
        interval (``set_interval``) restarts the wait with it."""
        while True:
            self._rearm.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            rearmed = asyncio.ensure_future(self._rearm.wait())
            done, pending = await asyncio.wait(
                {changed, rearmed}, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if changed in done:
                self._changed.clear()
                return "stopped" if self._stop.is_set() else "event"
            if rearmed not in done:
                return "timer"

    def _step(self) -> int:
        """watchfiles' step for what was seen last (see the module docstring)."""
        return self.step_ms if self.active else self.idle_step_ms

    async def _watch(self) -> None:
        # watchfiles sets the stop_event it is given when its task is cancelled
        # (watchfiles/main.py, awatch): each watcher gets its own, or the restart in
        # set_folders would stop the next watcher before it began.
        self._watcher_stop = stop = asyncio.Event()
        while not self._stop.is_set() and not stop.is_set():
            if self._streaming:
                await self._watching.wait()
                self._changed.set()  # for what happened while nothing was watched
                continue
            identities = {f: _identity(f) for f in self.folders}
            existing = [str(f) for f, identity in identities.items() if identity]
            if not existing:
                await asyncio.sleep(MISSING_DIR_RETRY_S)
                continue
            step = self._step()
            try:
                async for changes in watchfiles.awatch(
                    *existing,
                    recursive=False,
                    debounce=WATCH_DEBOUNCE_MS,
                    step=step,
                    stop_event=stop,
                    rust_timeout=HEARTBEAT_MS,
                    yield_on_timeout=True,
                ):
                    if changes:
                        self._changed.set()
                    self.active = bool(changes)  # else a heartbeat: quiet since
                    if self._streaming:
                        break
                    if self._step() != step:
                        # Changes after a quiet spell, or a quiet spell after changes:
                        # watch again at the step that fits, with a hint for whatever
                        # happened meanwhile.
                        self._changed.set()
                        break
                    # A watched folder deleted (and perhaps made again: the watcher
                    # keeps the dead inode, and the new one may reuse its number), or
                    # one that appeared: start over on what is there now.
                    if any(path in existing for _change, path in changes) or any(
                        _identity(f) != identity for f, identity in identities.items()
                    ):
                        break
            except (FileNotFoundError, OSError):
                # A watched folder was removed (the store was deleted): wait for it.
                self._changed.set()
                await asyncio.sleep(MISSING_DIR_RETRY_S)
