"""Database health over time: probe samples → checkpoint history and warnings.

Textual-free; the app and ``--events`` drive it. Each ``sample()`` asks the probe
subprocess for the ``-wal``/``-shm``/database headers (this process never opens
those files, SQLITE_WAL.md §3), feeds the checkpoint-history inference and the
warning rules, and keeps short series of WAL size and pending frames for sparklines.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..wal.history import CheckpointEvent, CheckpointHistory, WalWarning, Warnings
from ..wal.probe import Probe, ProbeError, WalSample
from .state import history_path

SERIES_LENGTH = 120


@dataclass(frozen=True)
class HealthState:
    """One health reading.

    ``sample`` is None (and ``error`` says why) when the probe could not answer;
    ``new_events`` are the checkpoint events inferred from this sample, ``events`` the
    whole kept history (oldest first); ``warnings`` are active now; ``wal_sizes``
    (bytes) and ``pending`` (frames) are the last SERIES_LENGTH samples, oldest first.
    """

    sample: WalSample | None
    error: str | None = None
    new_events: tuple[CheckpointEvent, ...] = ()
    events: tuple[CheckpointEvent, ...] = ()
    warnings: tuple[WalWarning, ...] = ()
    wal_sizes: tuple[int, ...] = ()
    pending: tuple[int, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)


class HealthMonitor:
    """Samples one database's WAL state; use from one thread at a time.

    ``persist`` keeps the checkpoint history in the user's state directory (keyed by
    database path) so it survives restarts; ``--events`` runs without it. ``probe`` is
    a shared probe (the refresher's); one is started when None.
    """

    def __init__(self, database: Path, *, persist: bool = True, probe: Probe | None = None) -> None:
        self.database = database
        self.probe = probe or Probe()
        self._own_probe = probe is None
        self.history = (CheckpointHistory.persisted(history_path(database)) if persist
                        else CheckpointHistory())
        self.rules = Warnings(own_pid=os.getpid())
        self._sizes: deque[int] = deque(maxlen=SERIES_LENGTH)
        self._pending: deque[int] = deque(maxlen=SERIES_LENGTH)
        self._active: set[str] = set()
        self._lock = threading.Lock()  # sample() in a worker thread, close() from the UI
        self._closed = False

    def sample(self, journal_mode: str | None = None,
               taken: WalSample | None = None) -> HealthState:
        """One reading; ``taken`` is a probe sample just taken by the refresher (the
        probe's idle process takes 6-8 ms to wake, so a refresh's sample is not taken
        twice), else the probe is asked. Never raises (a probe failure is ``error``)."""
        with self._lock:
            if self._closed:
                return HealthState(None, error="closed")
            return self._sample(journal_mode, taken)

    def _sample(self, journal_mode: str | None, taken: WalSample | None) -> HealthState:
        try:
            sample = taken or self.probe.sample(self.database)
        except ProbeError as exc:
            return HealthState(None, error=f"cannot read the WAL state: {exc}")
        new = tuple(self.history.observe(sample))
        warnings = tuple(self.rules.update(sample, journal_mode))
        self._sizes.append(sample.wal_size or 0)
        self._pending.append(sample.pending or 0)
        return HealthState(
            sample=sample,
            new_events=new,
            events=self.history.events,
            warnings=warnings,
            wal_sizes=tuple(self._sizes),
            pending=tuple(self._pending),
            counts=self.history.counts(),
            rates={label: self.history.rate_per_minute(label) for label in
                   ("wal_reset", "truncate", "backfill")},
        )

    def raised(self, state: HealthState) -> list[WalWarning]:
        """Warnings in ``state`` that were not active at the previous call."""
        codes = {w.code for w in state.warnings}
        new = [w for w in state.warnings if w.code not in self._active]
        self._active = codes
        return new

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._own_probe:
                self.probe.close()
