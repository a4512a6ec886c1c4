"""Checkpoint history inferred from successive :class:`~stepflow_top.wal.sample.WalSample`
observations (SQLite keeps none), and its persistence. The event itself lives in
:mod:`.checkpoint_event`, the WAL warnings in :mod:`.warnings`; both are importable
from here too.

What can be inferred from outside (SQLITE_WAL.md §2, wal.c ``walRestartHdr`` /
``walRestartLog`` / ``walCheckpoint``):

* a rise of salt-1 is a **WAL reset**; each reset adds exactly 1 (``walRestartHdr``), so
  the number of resets between two samples is the salt-1 delta, however sparse the
  samples. A reset happens only after a complete checkpoint, so it also means the
  previous cycle was fully copied into the database;
* a ``-wal`` of 0 bytes with new salts is a **TRUNCATE** checkpoint. So is a ``-wal``
  that is shorter than at the previous sample after a reset (and cut at a frame
  boundary), even when the 0-byte moment, which lasts only until the next
  commit, fell between two samples: a plain reset writes from offset 32 again and
  never shortens the file, because SQLite's default ``journal_size_limit`` is -1
  (pragma.html). The exception: a writer that sets ``journal_size_limit`` has its
  ``-wal`` trimmed on the first commit after a reset (wal.c ``sqlite3WalFrames`` →
  ``walLimitSize``), to the limit or the first commit's frames if larger; a limit
  that is not a frame boundary is told apart, otherwise the trim looks like a TRUNCATE
  from outside and is reported as one. StepFlow Monitor does not set it
  (STEPFLOW_STORE.md);
* a rise of ``nBackfill`` under the same salts is checkpoint progress (**backfill**);
  PASSIVE, FULL and RESTART cannot be told apart from outside;
* ``nBackfillAttempted > nBackfill`` is an **interrupted** checkpoint;
* the ``-wal`` vanishing means the last connection closed (it checkpointed first);
  appearing means a connection opened.

Salt-1 is random when a connection that has never reset writes the first frame of a
``-wal`` (wal.c ``walWriteFrames``: ``if( pWal->nCkpt==0 ) sqlite3_randomness``), so a
salt-1 jump larger than :data:`MAX_PLAUSIBLE_RESETS` is not counted as resets: the
resets are then taken from the new ``-wal`` header's checkpoint sequence (that
connection's own count), none when the ``-wal`` was empty before and the sequence is 0.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Iterable

from .checkpoint_event import CheckpointEvent
from .files import NotRegular, open_regular
from .format import WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE
from .sample import WalSample
from .warnings import WalWarning, Warnings

__all__ = [
    "CheckpointEvent",
    "CheckpointHistory",
    "WalWarning",
    "Warnings",
    "MAX_PLAUSIBLE_RESETS",
]

#: Salt-1 deltas above this are taken as a randomised salt (a new writer connection),
#: not as that many resets.
MAX_PLAUSIBLE_RESETS = 1 << 20

#: At most this many bytes per kept event are read back from a history file (its tail).
_BYTES_PER_EVENT = 1024


def _read_tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of the regular file ``path``, from its first whole line.
    Raises ``FileNotFoundError``, :class:`~.files.NotRegular` or another ``OSError``."""
    fd = open_regular(path, "a history file")
    try:
        start = max(0, os.fstat(fd).st_size - limit)
        data = os.pread(fd, limit, start)
    finally:
        os.close(fd)
    return data.split(b"\n", 1)[1] if start and b"\n" in data else data


def _pending(s: WalSample) -> int:
    return s.pending or 0


def _shortened(prev: WalSample, cur: WalSample) -> bool:
    """After a reset: is the ``-wal`` shorter than at the previous sample, and cut at a
    frame boundary? Then it was truncated in between, although the 0-byte moment (which
    lasts until the next commit) was not sampled. A TRUNCATE leaves 0 bytes and commits
    then append a 32-byte header and whole frames, so the size stays on a boundary
    (frames being appended but not yet committed included: the live figure from
    ``-shm`` lags them, which is why it is not used here). A ``journal_size_limit``
    trim cuts the file at the limit, which is rarely a boundary."""
    if cur.wal_size is None or prev.wal_size is None or cur.wal_size >= prev.wal_size:
        return False
    page = cur.page_size
    if not page or cur.wal_size == 0:
        return True
    return cur.wal_size >= WAL_HEADER_SIZE and (
        (cur.wal_size - WAL_HEADER_SIZE) % (page + WAL_FRAME_HEADER_SIZE) == 0)


class CheckpointHistory:
    """Turns successive samples of one database into :class:`CheckpointEvent` s.

    ``path``: a JSONL file to persist to (see :meth:`persisted`); None keeps the
    history in memory only. At most ``max_events`` events are kept (oldest dropped).
    """

    def __init__(self, path: Path | None = None, max_events: int = 1000) -> None:
        self.path = path
        self.max_events = max_events
        self._events: deque[CheckpointEvent] = deque(maxlen=max_events)
        self._last: WalSample | None = None
        self._interrupt_key: tuple[int, ...] | None = None
        self._appended = 0
        self.persist_error: str | None = None

    @classmethod
    def persisted(cls, path: Path, max_events: int = 1000) -> "CheckpointHistory":
        """A history persisted to the JSONL file ``path`` (the caller chooses where:
        ``live.state.history_path`` keeps it in the user's state directory), with the
        events saved by earlier runs loaded."""
        h = cls(path, max_events)
        h.load()
        return h

    @property
    def events(self) -> tuple[CheckpointEvent, ...]:
        """All kept events, oldest first."""
        return tuple(self._events)

    @property
    def last_sample(self) -> WalSample | None:
        """The sample the next observation is compared with."""
        return self._last

    # -- inference ---------------------------------------------------------------------
    def observe(self, sample: WalSample) -> list[CheckpointEvent]:
        """Compare ``sample`` with the previous one and return the new events (also kept
        and, when persisted, appended to the file). The first sample only sets the
        baseline and returns ``[]``."""
        new = self._infer(self._last, sample)
        for ev in new:
            self._events.append(ev)
        if new and self.path is not None:
            self._append(new)
        return new

    def _infer(self, prev: WalSample | None, cur: WalSample) -> list[CheckpointEvent]:
        if prev is None:
            self._last = cur
            self._interrupt_key = self._interrupt_state(cur)
            return []
        t = cur.wall
        if prev.wal_exists and not cur.wal_exists:
            self._last = cur
            return [CheckpointEvent(
                t, "wal_deleted", frames=_pending(prev), at_least=True,
                wal_size_before=prev.wal_size, wal_size_after=None, salt1=prev.salt1,
            )]
        if not prev.wal_exists and cur.wal_exists:
            self._last = cur
            self._interrupt_key = self._interrupt_state(cur)
            return [CheckpointEvent(
                t, "wal_created", frames=0, wal_size_before=None, wal_size_after=cur.wal_size,
                salt1=cur.salt1,
            )]
        if not cur.wal_exists:
            self._last = cur
            return []
        if (
            prev.wal_inode is not None and cur.wal_inode is not None
            and prev.wal_inode != cur.wal_inode
        ):
            self._last = cur
            self._interrupt_key = self._interrupt_state(cur)
            return [
                CheckpointEvent(t, "wal_deleted", frames=_pending(prev), at_least=True,
                                wal_size_before=prev.wal_size, salt1=prev.salt1),
                CheckpointEvent(t, "wal_created", frames=0, wal_size_after=cur.wal_size,
                                salt1=cur.salt1),
            ]
        if cur.salt1 is None and cur.wal_size:
            # No readable header this time (torn -shm): keep the old baseline.
            return []
        events: list[CheckpointEvent] = []
        s0, s1 = prev.salt1, cur.salt1
        truncated = cur.wal_size == 0 and (prev.wal_size or 0) > 0
        if s0 is not None and s1 is not None and s0 != s1:
            delta = (s1 - s0) & 0xFFFFFFFF
            plausible = delta <= MAX_PLAUSIBLE_RESETS
            if plausible:
                count = delta
            else:
                # Random salts: the first frame written by a connection that never reset
                # (wal.c walWriteFrames). Its -wal header's checkpoint sequence counts
                # the resets that connection made since; from an empty -wal that is all.
                seq = cur.checkpoint_seq or 0
                count = seq if not prev.wal_size else max(1, seq)
            if count:
                events.append(CheckpointEvent(
                    t, "wal_reset", frames=_pending(prev), at_least=True,
                    wal_size_before=prev.wal_size, wal_size_after=cur.wal_size,
                    salt1=s1, count=count,
                ))
                if cur.wal_size == 0 or (plausible and _shortened(prev, cur)):
                    events.append(CheckpointEvent(
                        t, "checkpoint", "truncate", frames=_pending(prev), at_least=True,
                        wal_size_before=prev.wal_size, wal_size_after=cur.wal_size, salt1=s1,
                    ))
            if (cur.backfilled or 0) > 0:
                events.append(CheckpointEvent(
                    t, "checkpoint", "backfill", frames=cur.backfilled, at_least=False,
                    wal_size_before=prev.wal_size, wal_size_after=cur.wal_size, salt1=s1,
                ))
        elif truncated and (s0 is None or s1 is None):
            # No -shm to read salts from (e.g. locking_mode=EXCLUSIVE): size alone.
            events.append(CheckpointEvent(
                t, "wal_reset", frames=_pending(prev), at_least=True,
                wal_size_before=prev.wal_size, wal_size_after=0, salt1=s1,
            ))
            events.append(CheckpointEvent(
                t, "checkpoint", "truncate", frames=_pending(prev), at_least=True,
                wal_size_before=prev.wal_size, wal_size_after=0, salt1=s1,
            ))
        elif prev.backfilled is not None and cur.backfilled is not None:
            if cur.backfilled > prev.backfilled:
                # nBackfill only grows within a cycle, so the delta is exact.
                events.append(CheckpointEvent(
                    t, "checkpoint", "backfill", frames=cur.backfilled - prev.backfilled,
                    wal_size_before=prev.wal_size, wal_size_after=cur.wal_size, salt1=s1,
                ))
            # A drop under the same salts is a rebuilt wal-index (recovery): no event.
        key = self._interrupt_state(cur)
        if key is not None and key != self._interrupt_key and cur.shm_header is not None:
            h = cur.shm_header
            events.append(CheckpointEvent(
                t, "interrupted", frames=h.backfill_attempted - h.backfilled,
                wal_size_before=prev.wal_size, wal_size_after=cur.wal_size, salt1=h.salt1,
            ))
        self._interrupt_key = key
        self._last = cur
        return events

    @staticmethod
    def _interrupt_state(s: WalSample) -> tuple[int, ...] | None:
        h = s.shm_header
        if h is None or not h.interrupted:
            return None
        return (h.salt1, h.salt2, h.backfilled, h.backfill_attempted)

    # -- figures -------------------------------------------------------------------------
    def counts(self, since: float | None = None) -> dict[str, int]:
        """Occurrences per label (``wal_reset`` counts resets, not events) for events
        observed at or after ``since`` (epoch seconds; None = all kept events)."""
        out = {k: 0 for k in ("wal_reset", "truncate", "backfill", "interrupted",
                              "wal_deleted", "wal_created")}
        for ev in self._events:
            if since is None or ev.wall >= since:
                out[ev.label] = out.get(ev.label, 0) + ev.count
        return out

    def rate_per_minute(
        self, label: str, window_s: float = 600.0, now: float | None = None
    ) -> float:
        """Occurrences of ``label`` per minute over the last ``window_s`` seconds
        (``now``: epoch seconds, default the current time)."""
        now = time.time() if now is None else now
        n = self.counts(since=now - window_s).get(label, 0)
        return n * 60.0 / window_s if window_s > 0 else 0.0

    def last_event(self, *labels: str) -> CheckpointEvent | None:
        """The most recent event with one of ``labels`` (any event when none given)."""
        for ev in reversed(self._events):
            if not labels or ev.label in labels:
                return ev
        return None

    # -- persistence ---------------------------------------------------------------------
    def load(self) -> int:
        """Read events saved earlier from :attr:`path`, validated like the command line
        (:meth:`CheckpointEvent.from_dict`; bad lines are skipped). Reads at most the
        last ``max_events`` KiB, never blocks on a FIFO planted there, and stops
        persisting (``path`` becomes None) when the path is not a regular file. Returns
        how many events were loaded; 0 when there is no file. Never raises for file
        problems (the reason goes to :attr:`persist_error`)."""
        if self.path is None:
            return 0
        try:
            raw = _read_tail(self.path, max(1 << 20, self.max_events * _BYTES_PER_EVENT))
        except FileNotFoundError:
            return 0
        except NotRegular as e:
            self.persist_error = f"{e} ({self.path}); the checkpoint history is not saved"
            self.path = None
            return 0
        except OSError as e:
            self.persist_error = str(e)
            return 0
        now = time.time()
        loaded = []
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                loaded.append(CheckpointEvent.from_dict(json.loads(line), now))
            except (ValueError, RecursionError):
                continue
        loaded.sort(key=lambda e: e.wall)
        self._events.extend(loaded)
        return len(loaded)

    def save(self) -> None:
        """Rewrite :attr:`path` with the kept events (atomically: temp file + rename).
        Errors go to :attr:`persist_error`; never raises."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".history-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    for ev in self._events:
                        f.write(json.dumps(ev.to_dict()) + "\n")
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
            self._appended = 0
            self.persist_error = None
        except OSError as e:
            self.persist_error = str(e)

    def _append(self, events: Iterable[CheckpointEvent]) -> None:
        assert self.path is not None
        events = list(events)
        self._appended += len(events)
        if self._appended >= self.max_events:
            self.save()  # compact: keep the last max_events only
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                for ev in events:
                    f.write(json.dumps(ev.to_dict()) + "\n")
        except OSError as e:
            self.persist_error = str(e)
