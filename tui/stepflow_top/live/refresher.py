"""One refresh: confirm a change from outside, then read the store in one short session.

Between refreshes nothing is held: no connection, no read transaction, no lock
(DESIGN.md promise 2), so the service's clean shutdown still deletes its ``-wal``/``-shm``
and ``journal_mode`` changes or exclusive writers work as if nobody watched. A change is
confirmed without a connection: the probe's ``-shm`` header (``iChange`` +1 per commit,
``mxFrame``, salts; SQLITE_WAL.md §2) and ``os.stat`` of the database and ``-wal``
(``stat`` opens nothing). The database path's device/inode is checked on every refresh:
a file deleted, replaced or recreated is followed, with the change marks reset
(promise 8). A closed WAL store (no ``-wal``) is read with ``immutable=1`` so no file is
created beside it (promise 1).

The Refresher is driven from one thread at a time (a Textual thread worker, or the
``--once``/``--events`` loop) and returns immutable ``StoreSnapshot``s.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from ..store.models import (
    DEFAULT_STALL_AFTER,
    Counts,
    Execution,
    ExecutionDetail,
    Judgement,
    Status,
    local_offset,
)
from ..store.queries import StoreReader, Window
from ..wal.probe import Probe, ProbeError, WalSample
from ..wal.readonly import closed_wal_store, wal_path
from .changes import ChangeTracker
from .writer import (
    Holder,
    WriterState,
    infer_offset,
    process_started,
    zone_offset,
)


@dataclass(frozen=True)
class ViewRequest:
    """What the screens show, and so what a refresh must read.

    ``limit`` executions, in ``sort`` order (a key of ``store.order.SORT_ORDERS``;
    ``reverse`` flips it), matching the ``/`` filter ``text`` (``store.filters``) and
    effective ``status`` (0: none, for the change feed alone); ``execution_id`` is the
    execution whose detail screen is open, if any.
    """

    limit: int = 50
    text: str = ""
    status: Status | None = None
    sort: str = "started"
    reverse: bool = False
    execution_id: str | None = None


@dataclass(frozen=True)
class StoreSnapshot:
    """What one refresh read; ``error`` is set (and the rest empty) when the store
    could not be read.

    ``taken_at`` is the reader's local naive time; ``events`` the change-feed events
    since the previous snapshot (see ``ChangeTracker``); ``searched`` is set when a
    filter stopped at its time budget after the newest ``searched`` rows;
    ``damaged_after`` is set when a corrupt page stopped the list after that many rows;
    ``replaced``
    is True on the first snapshot of a database file that replaced another one.
    """

    taken_at: datetime
    request: ViewRequest
    journal_mode: str = "?"
    counts: Counts = Counts()
    executions: tuple[Execution, ...] = ()
    detail: ExecutionDetail | None = None
    error: str | None = None
    events: tuple[dict, ...] = ()
    writer: WriterState = WriterState()
    stall_after: float = DEFAULT_STALL_AFTER
    searched: int | None = None
    damaged_after: int | None = None
    replaced: bool = False
    sample: WalSample | None = field(default=None, compare=False)

    def judgement(self, now: datetime | None = None) -> Judgement:
        """The ``Judgement`` for effective statuses at ``now`` (reader-local naive
        time, default ``taken_at``), converted to the writer's zone."""
        return judgement_for(self.writer, now or self.taken_at, self.stall_after)

    @property
    def finished(self) -> tuple[dict, ...]:
        """Execution events of this snapshot that report a final status."""
        return tuple(e for e in self.events if e["type"] == "execution"
                     and e["status"] in ("completed", "failed", "cancelled"))


def judgement_for(writer: WriterState, now: datetime, stall_after: float) -> Judgement:
    """A Judgement at reader-local ``now`` for a store written in ``writer.offset``."""
    shift = writer.offset - local_offset()
    started = writer.started
    writer_started = None
    # A process start time only says which runs predate the service when the zone of
    # the stored times is known; a guessed zone could call every run lost.
    if started is not None and writer.offset_source != "assumed local":
        writer_started = (datetime.fromtimestamp(started, timezone.utc).replace(tzinfo=None)
                          + writer.offset)
    return Judgement(now + shift, stall_after, writer.attached, writer_started)


OFFSET_EVERY = 60.0  # seconds between inferences of the writer's UTC offset


class Refresher:
    """Reads snapshots of one store; see the module docstring.

    ``stall_after`` in seconds; ``writer_tz`` the writer's zone when given by the user
    (``live.writer.parse_writer_tz``; absent: inferred); ``probe`` a shared probe (one
    is started when None and closed with the Refresher).
    """

    def __init__(
        self,
        paths: StorePaths,
        *,
        stall_after: float = DEFAULT_STALL_AFTER,
        writer_tz: tzinfo | None | str = "infer",
        probe: Probe | None = None,
    ) -> None:
        self.paths = paths
        self.stall_after = stall_after
        self.writer_tz = writer_tz
        self.reader = StoreReader(paths)
        self.tracker = ChangeTracker(self.reader)
        self.probe = probe or Probe()
        self._own_probe = probe is None
        self._token: tuple | None = None
        # The probe sample the last refresh took (None: it took none), also when it
        # found nothing changed: the health reading after it need not ask again.
        self.last_sample: WalSample | None = None
        self._last_request: ViewRequest | None = None
        self._identity: tuple[int, int] | None = None
        self._offset: tuple[timedelta, str] | None = None
        self._offset_at = 0.0
        self._starts: dict[int, float | None] = {}
        # close() may come from the UI thread while a worker thread refreshes: a
        # connection closed under a running statement crashes the process.
        self._lock = threading.Lock()
        self._closed = False

    def refresh(
        self, request: ViewRequest, now: datetime, *, force: bool = False, tables: bool = False
    ) -> StoreSnapshot | None:
        """A new snapshot, or None when neither the files nor the request changed
        since the previous one (and ``force`` is false). ``now`` is the reader's
        local naive time; ``tables`` also counts step and artifact rows. Never raises
        for a store that cannot be read: the snapshot's ``error`` says why."""
        with self._lock:
            self.last_sample = None
            if self._closed:
                return None
            try:
                return self._refresh(request, now, force, tables)
            except StoreUnavailable as exc:
                return self._failed(request, now, str(exc))
            except Exception as exc:  # data we did not foresee must not end the monitor
                return self._failed(
                    request, now, f"unexpected data in the store ({type(exc).__name__}: "
                    f"{exc}); please report it")

    def _failed(self, request: ViewRequest, now: datetime, error: str) -> StoreSnapshot:
        self.reader.close()
        self._token = None
        self.tracker.distrust_counts()
        return StoreSnapshot(now, request, error=error, stall_after=self.stall_after)

    def _refresh(
        self, request: ViewRequest, now: datetime, force: bool, tables: bool
    ) -> StoreSnapshot | None:
        database = self.paths.database
        identity = _identity(database)
        if identity is None:
            raise StoreUnavailable(f"no database at {database}")
        replaced = self._identity is not None and identity != self._identity
        if self._identity != identity:
            self.tracker.reset()
            self._offset = None
            self._identity = identity
        sample = self.last_sample = self._sample()
        token = _change_token(database, sample)
        immutable = closed_wal_store(database, sample.wal_mode if sample else None)
        unseen: list[dict] = []
        if not force and token == self._token and request == self._last_request:
            if not self.tracker.count_due:
                return None
            with self.reader.session(immutable=immutable):
                recounted = self.tracker.recount()
            if recounted is None:
                return None
            unseen = recounted  # rows went away (or came) unseen: read the views again
        with self.reader.session(immutable=immutable):
            writer = self._writer(sample)
            self.reader.writer_offset = writer.offset
            judgement = judgement_for(writer, now, self.stall_after)
            events = unseen + self.tracker.poll(judgement, recount=force)
            window = Window(())
            if request.limit:
                window = self.reader.executions(
                    judgement, limit=request.limit, text=request.text or None,
                    status=request.status, sort=request.sort, reverse=request.reverse)
            counts = Counts(
                executions=self.tracker.executions,
                steps=self.reader.count("steps") if tables else None,
                artifacts=self.reader.count("artifacts") if tables else None,
                stored={k: n for k, n in self.tracker.stored_counts.items() if n > 0},
                live=self.tracker.live_executions,
            )
            detail = self.reader.detail(request.execution_id) if request.execution_id else None
            journal = self.reader.journal_mode
        self._token, self._last_request = token, request
        return StoreSnapshot(
            taken_at=now, request=request, journal_mode=journal, counts=counts,
            executions=window.executions, detail=detail, events=tuple(events), writer=writer,
            stall_after=self.stall_after, searched=window.searched,
            damaged_after=window.damaged_after, replaced=replaced,
            sample=sample,
        )

    def _sample(self) -> WalSample | None:
        try:
            return self.probe.sample(self.paths.database)
        except ProbeError:
            return None  # attachment unknown; change detection falls back to stat()

    def _writer(self, sample: WalSample | None) -> WriterState:
        attached = sample.writer_attached if sample is not None else None
        holders = tuple(
            Holder(h.pid, h.command, self._started(h.pid))
            for h in (sample.holders if sample is not None else ()))
        last_commit = _last_commit(self.paths.database)
        offset, source = self._writer_offset(last_commit)
        return WriterState(attached, holders, last_commit, offset, source)

    def _started(self, pid: int) -> float | None:
        # A process's start time never changes: read /proc once per pid.
        if pid not in self._starts:
            if len(self._starts) > 64:
                self._starts.clear()
            self._starts[pid] = process_started(pid)
        return self._starts[pid]

    def _writer_offset(self, last_commit: float | None) -> tuple[timedelta, str]:
        at = last_commit or time.time()
        if self.writer_tz != "infer":
            return zone_offset(self.writer_tz, at), "--writer-tz"  # type: ignore[arg-type]
        # A zone seldom changes: once inferred, look again every OFFSET_EVERY seconds
        # (it costs two queries), so a commit reaches the change feed sooner.
        if self._offset is None or time.monotonic() - self._offset_at >= OFFSET_EVERY:
            inferred = infer_offset(self.reader.newest_timestamps(), last_commit)
            if inferred is not None:
                self._offset, self._offset_at = (inferred, "inferred"), time.monotonic()
        if self._offset is not None:
            return self._offset
        return local_offset(at), "assumed local"

    def recheck(self, now: datetime, writer: WriterState) -> list[dict]:
        """Change-feed events for live runs whose effective status moved with the
        clock alone (stalled) since the last refresh, without reading the store."""
        with self._lock:
            return self.tracker.recheck(judgement_for(writer, now, self.stall_after))

    def close(self) -> None:
        """Stop refreshing (after a refresh running in another thread ends)."""
        with self._lock:
            self._closed = True
            self.reader.close()
            if self._own_probe:
                self.probe.close()


def _identity(database) -> tuple[int, int] | None:
    try:
        st = os.stat(database)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _stat_key(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _change_token(database, sample: WalSample | None) -> tuple:
    """Everything that moves when a commit, a checkpoint or a new writer happens."""
    shm = sample.shm_header if sample is not None else None
    return (
        _stat_key(database),
        _stat_key(wal_path(database)),
        None if shm is None else (shm.change_counter, shm.frames, shm.salt1, shm.salt2),
        None if sample is None else (sample.writer_attached, sample.writer_pids),
    )


def _last_commit(database) -> float | None:
    """Modification time (unix seconds) of the newest of ``-wal`` and the database."""
    times = []
    for path in (wal_path(database), database):
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            continue
    return max(times) if times else None
