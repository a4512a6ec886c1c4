"""When the next refresh may start: coalescing, a frame cap, and a gap for the writer.

Rules (DESIGN.md "Data flow", promises 2 and 9):

* at most one refresh runs and at most one more is pending; requests made meanwhile
  merge into the pending one (``force`` is kept if any of them asked for it);
* the first change after a quiet spell starts at once;
* under a stream of changes, starts are spaced so that this process's CPU (the
  refresh, applying its snapshot and the redraw it causes, measured with
  ``time.process_time`` over the last frame) stays near ``CPU_SHARE`` of a core: the
  spacing is that cost divided by ``CPU_SHARE``, kept between ``min_interval`` (at most
  ten frames a second: a person reads a few, and each costs bytes to the terminal) and
  ``MAX_INTERVAL`` (so the newest state is on screen within about a quarter of a second
  of its commit, even when the share cannot be kept). Measured with
  tests/benchmarks/bench_stream.py under 200 saves/s, a fixed 4 frames a second cost
  27-35 % of a core. A frame belongs to a stream when a change was reported while it
  ran or waited, or when it started within ``STREAM_GAP`` of the last (the watch may
  report a stream's commits only after each refresh: such frames were once drawn ten
  times a second, at twice the CPU);
* the writer gets a gap at least as long as the last refresh took before
  the next one starts (a slow refresh must not turn into back-to-back snapshots that
  starve the writer's checkpoints);
* a rollback-journal store (not WAL), where every read briefly blocks the writer's
  commits, is read at most once per ``ROLLBACK_INTERVAL``.

Textual-free and clock-injected, so it is tested with a fake clock.
"""

from __future__ import annotations

import time
from typing import Callable

FRAME_INTERVAL = 0.1  # seconds: at most 10 refreshes a second under a stream
MAX_INTERVAL = 0.2  # seconds: the widest spacing the CPU share may ask for
STREAM_GAP = 2 * MAX_INTERVAL  # seconds: starts closer than this belong to one stream
CPU_SHARE = 0.10  # of one core: what a stream's refreshes and redraws should cost
ROLLBACK_INTERVAL = 1.0  # seconds between reads of a store that is not in WAL mode


class RefreshScheduler:
    """Call ``request()`` for every hint. When it returns a delay (seconds, 0 = now),
    call ``start()`` after that delay, run the refresh, then call ``finish()``; if that
    returns a delay, call ``start()`` again after it. ``None`` means nothing to arm:
    the request was merged into the running or already-armed refresh."""

    def __init__(self, *, min_interval: float = FRAME_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.process_time) -> None:
        self.min_interval = min_interval
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.frame_cost = 0.0  # CPU seconds of the last frame (start to next start)
        self._cpu_at_start: float | None = None
        self.running = False
        self.armed = False
        self.pending = False
        self.pending_since_start = False  # frames back to back: their cost is a stream's
        self.in_stream = False  # the running refresh started within STREAM_GAP of the last
        self._force = False
        self._last_start: float | None = None
        self._last_duration = 0.0
        self._last_end: float | None = None

    def request(self, *, force: bool = False) -> float | None:
        """A change may have happened (or the user asked, ``force``)."""
        self._force = self._force or force
        if self.running or self.armed:
            self.pending = self.pending_since_start = True
            return None
        self.armed = True
        return self._delay()

    def start(self) -> bool:
        """The armed refresh starts now; returns whether it must run even if nothing
        changed (``force``)."""
        self.armed = self.pending = False
        self.running = True
        cpu, now = self.cpu_clock(), self.clock()
        # A frame's cost is the CPU from its start to the next one, when they are part
        # of one stream: the next was asked for while this one ran or waited, or
        # started within STREAM_GAP of it (a change reported only after a refresh
        # ended is part of the stream too: the watch step decides when it is seen).
        self.in_stream = self._last_start is not None and now - self._last_start <= STREAM_GAP
        if self._cpu_at_start is not None and (self.pending_since_start or self.in_stream):
            self.frame_cost = cpu - self._cpu_at_start
        self._cpu_at_start = cpu
        self.pending_since_start = False
        self._last_start = now
        force, self._force = self._force, False
        return force

    def finish(self) -> float | None:
        """The running refresh ended; returns the delay before the pending one, if any."""
        now = self.clock()
        self.running = False
        self._last_end = now
        if self._last_start is not None:
            self._last_duration = max(0.0, now - self._last_start)
        if not self.pending:
            return None
        self.pending = False
        self.armed = True
        return self._delay()

    def _delay(self) -> float:
        if self._last_start is None or self._last_end is None:
            return 0.0
        spacing = min(max(self.min_interval, MAX_INTERVAL),
                      max(self.min_interval, self.frame_cost / CPU_SHARE))
        earliest = max(self._last_start + spacing, self._last_end + self._last_duration)
        return max(0.0, earliest - self.clock())
