"""One refresh: confirm a change with ``data_version``, then run bounded queries.

The Refresher owns a StoreReader (one read-only connection) and is driven from
one thread at a time (a Textual thread worker, or the ``--once``/``--events`` loop).
It returns immutable ``StoreSnapshot``s that a view diffs against what it shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from ..store.models import FINAL_EXECUTION, Counts, Execution, ExecutionDetail, Status
from ..store.queries import StoreReader


@dataclass(frozen=True)
class ViewRequest:
    """What the screens show, and so what a refresh must read.

    ``limit`` executions, newest first, matching ``text`` and effective ``status``;
    ``execution_id`` is the execution whose detail screen is open, if any.
    """

    limit: int = 50
    text: str = ""
    status: Status | None = None
    execution_id: str | None = None


@dataclass(frozen=True)
class StoreSnapshot:
    """What one refresh read; ``error`` is set (and the rest empty) when the store
    could not be read. ``taken_at`` is local naive time."""

    taken_at: datetime
    request: ViewRequest
    data_version: int = -1
    journal_mode: str = "?"
    counts: Counts = Counts()
    executions: tuple[Execution, ...] = ()
    detail: ExecutionDetail | None = None
    error: str | None = None
    finished: tuple[Execution, ...] = ()  # final rows saved since the previous snapshot


class Refresher:
    """Reads snapshots of one store (``stall_after`` in seconds); see the module
    docstring."""

    def __init__(self, paths: StorePaths, *, stall_after: float = 60.0) -> None:
        self.reader = StoreReader(paths, stall_after=stall_after)
        self._last: tuple[int, ViewRequest] | None = None
        self._stored: tuple[int, dict[str, int]] | None = None
        self._live: tuple[tuple[int, int], tuple[Execution, ...]] | None = None
        self._finished_mark: int | None = None
        # close() may come from the UI thread while a worker thread refreshes: a
        # connection closed under a running statement crashes the process.
        self._lock = threading.Lock()
        self._closed = False

    def refresh(
        self, request: ViewRequest, now: datetime, *, force: bool = False, tables: bool = False
    ) -> StoreSnapshot | None:
        """A new snapshot, or None when neither the data nor the request changed
        since the previous one (and ``force`` is false). ``tables`` also counts step
        and artifact rows. Never raises for a store that cannot be read: the
        snapshot's ``error`` says why.

        Counts per stored status scan an index, so they are cached until an
        execution row is saved (its rowid rises: STEPFLOW_STORE.md) or ``force``;
        the live rows behind the counts, until an execution or a step is saved.
        Housekeeping's deletes show at the next forced refresh."""
        with self._lock:
            if self._closed:
                return None
            return self._refresh(request, now, force, tables)

    def _refresh(
        self, request: ViewRequest, now: datetime, force: bool, tables: bool
    ) -> StoreSnapshot | None:
        reader = self.reader
        try:
            if reader.conn is None:
                reader.open()
            version = reader.data_version()
            if not force and self._last == (version, request):
                return None
            executions = reader.executions(
                now, limit=request.limit, text=request.text or None, status=request.status
            )
            marks = reader.max_rowids()
            counts = reader.counts(stored=self._stored_counts(marks, force),
                                   live=self._live_executions(marks, force), tables=tables)
            detail = reader.detail(request.execution_id) if request.execution_id else None
            finished = self._finished_since(marks[0])
        except StoreUnavailable as exc:
            reader.close()
            self._last = self._stored = self._live = None
            return StoreSnapshot(now, request, error=str(exc))
        except Exception as exc:  # data we did not foresee must not end the monitor
            reader.close()
            self._last = self._stored = self._live = None
            return StoreSnapshot(
                now, request,
                error=f"unexpected data in the store ({type(exc).__name__}: {exc}); "
                "please report it")
        self._last = (version, request)
        return StoreSnapshot(
            taken_at=now,
            request=request,
            data_version=version,
            journal_mode=reader.journal_mode,
            counts=counts,
            executions=tuple(executions),
            detail=detail,
            finished=finished,
        )

    def _finished_since(self, mark: int) -> tuple[Execution, ...]:
        """Executions whose final row was saved since the previous look, whether or
        not they are in the window (the first look is the baseline: runs that ended
        before are not news)."""
        if self._finished_mark is None or mark < self._finished_mark:
            self._finished_mark = mark  # first look, or another database file
            return ()
        if mark == self._finished_mark:
            return ()
        saved = self.reader.executions_saved_since(self._finished_mark)
        self._finished_mark = max([mark, *(rowid for rowid, _ in saved)])
        return tuple(e for _, e in saved if e.stored_status in FINAL_EXECUTION)

    def _stored_counts(self, marks: tuple[int, int], force: bool) -> dict[str, int]:
        if force or self._stored is None or self._stored[0] != marks[0]:
            self._stored = (marks[0], self.reader.stored_status_counts())
        return self._stored[1]

    def _live_executions(self, marks: tuple[int, int], force: bool) -> tuple[Execution, ...]:
        # Live rows and their aggregates change only with a save of an execution or
        # a step (and a log file is rewritten only when its step is saved).
        if force or self._live is None or self._live[0] != marks:
            self._live = (marks, tuple(self.reader.live_executions()))
        return self._live[1]

    def close(self) -> None:
        """Close the connection, after a refresh running in another thread ends."""
        with self._lock:
            self._closed = True
            self.reader.close()
