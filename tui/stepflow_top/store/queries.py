"""Bounded, fully-fetched queries over one read-only connection.

Every method runs a handful of statements, each with a LIMIT or an indexed
equality, and fetches all rows before returning, so no snapshot outlives a call
(DESIGN.md promise 2). Work follows what is shown: the executions window is the
newest ``limit`` rows by ``created_at`` (indexed), and step rows are read only for
the executions in that window (``steps(execution_id)`` is indexed).

Columns are introspected once with sqlite-utils; a column an older or newer
schema lacks is read as NULL instead of failing the query.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Iterator, Sequence

import sqlite_utils

from . import filters
from .connection import (
    StoreDamaged,
    StoreUnavailable,
    connect_readonly,
    explain,
    fetch_all,
    is_corruption,
)
from .locate import StorePaths
from .models import (
    FINAL_EXECUTION,
    Artifact,
    Execution,
    ExecutionDetail,
    Judgement,
    Status,
    local_offset,
)
from .step_queries import MAX_STEPS_PER_EXECUTION, StepQueries
from .order import SORT_ORDERS, SORT_SCOPE, with_status
from .rows import (
    ARTIFACT_COLUMNS,
    EXECUTION_COLUMNS,
    STEP_COLUMNS,
    artifact_order,
    artifact_row,
    chunks,
    execution_row,
    select_list,
    step_row,
)

MAX_ARTIFACTS = 1_000
SEARCH_SLICE = 2_000  # rows per filtered-search statement
SEARCH_BUDGET_S = 0.25  # seconds a filtered search may take per refresh


@dataclass(frozen=True)
class Window:
    """The executions a view shows: the newest ``limit`` matching the filter.

    ``searched`` is None when the whole store was searched; otherwise the search
    stopped at its time budget after the newest ``searched`` rows (a filter that
    matches little must not scan a million rows per refresh: DESIGN.md promise 2).
    ``damaged_after``: a corrupt page stopped the read after that many rows.
    ``sorted_scope``: the rows were sorted within the newest that many executions.
    """

    executions: tuple[Execution, ...]
    searched: int | None = None
    damaged_after: int | None = None
    sorted_scope: int | None = None


class StoreReader(StepQueries):
    """Reads one store through a read-only connection that lives only as long as a
    session (``with reader.session(): ...``): between sessions no connection, read
    transaction or lock is held (DESIGN.md promise 2).

    Use from one thread at a time. ``open()`` raises StoreUnavailable; every query
    method raises StoreUnavailable when the database goes away or turns unreadable.
    ``writer_offset`` is the writer's UTC offset: log-file times (absolute) are
    converted with it so that they compare with the stored local timestamps.
    """

    def __init__(self, paths: StorePaths) -> None:
        self.paths = paths
        self.conn: sqlite3.Connection | None = None
        self.journal_mode = "?"
        self.writer_offset: timedelta = local_offset()
        self._schema: tuple[int, dict[str, str], set[str]] | None = None
        self._remembered = {}
        self._last_full = {}
        self.session_prints = (set(), {})

    # -- connection ------------------------------------------------------
    def open(self, *, immutable: bool = False) -> None:
        """Connect (``immutable`` for a closed WAL store only: see
        ``wal.readonly.closed_wal_store``) and introspect the schema once per schema
        version; raises StoreUnavailable."""
        self.close()
        conn = connect_readonly(self.paths.database, immutable=immutable)
        try:
            version = int(fetch_all(conn, "PRAGMA schema_version")[0][0])
            if self._schema is None or self._schema[0] != version:
                self._schema = (version, *self._introspect(conn))
            # immutable=1 reads the file as a rollback database: it is WAL all the same.
            self.journal_mode = "wal" if immutable else str(
                fetch_all(conn, "PRAGMA journal_mode")[0][0]).lower()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(explain(exc, self.paths.database)) from None
        except StoreUnavailable:
            conn.close()
            raise
        self.conn = conn

    def _introspect(self, conn: sqlite3.Connection) -> tuple[dict[str, str], set[str]]:
        # No plugins: their prepare_connection hook would change our read-only
        # connection, and finding them (entry points) cost ~28 ms of the first rows.
        db = sqlite_utils.Database(conn, execute_plugins=False)
        tables = set(db.table_names())
        if "executions" not in tables:
            raise StoreUnavailable(
                f"{self.paths.database} has no executions table: "
                "is this a StepFlow Monitor database?"
            )
        select = {
            table: select_list(columns, set(db[table].columns_dict) if table in tables else set())
            for table, columns in (
                ("executions", EXECUTION_COLUMNS),
                ("steps", STEP_COLUMNS),
                ("artifacts", ARTIFACT_COLUMNS),
            )
        }
        return select, tables

    @property
    def _select(self) -> dict[str, str]:
        assert self._schema is not None, "query outside a session"
        return self._schema[1]

    @property
    def _has(self) -> set[str]:
        assert self._schema is not None, "query outside a session"
        return self._schema[2]

    def close(self) -> None:
        self.session_prints = (set(), {})
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    @contextmanager
    def session(self, *, immutable: bool = False) -> Iterator["StoreReader"]:
        """Open, yield, and close again whatever happens."""
        self.open(immutable=immutable)
        try:
            yield self
        finally:
            self.close()

    def rows(self, sql: str, params: Sequence | dict = ()) -> list:
        """Every row of one statement, inside the open session. Raises StoreDamaged
        for a corrupt page and StoreUnavailable (one line) for any other failure, or
        when no session is open."""
        if self.conn is None:
            raise StoreUnavailable(f"{self.paths.database} is not open")
        try:
            return fetch_all(self.conn, sql, params)
        except sqlite3.Error as exc:
            kind = StoreDamaged if is_corruption(exc) else StoreUnavailable
            raise kind(explain(exc, self.paths.database)) from None

    # -- executions --------------------------------------------------------
    def executions(
        self,
        judgement: Judgement,
        *,
        limit: int = 100,
        text: str | None = None,
        status: Status | None = None,
        sort: str = "started",
        reverse: bool = False,
        budget_s: float = SEARCH_BUDGET_S,
    ) -> Window:
        """``limit`` executions matching the ``/`` filter ``text`` (``store.filters``:
        qualifiers and free text; one that cannot be parsed is all free text) and
        effective ``status`` (a ``status:`` qualifier wins), in ``sort`` order (a key of
        SORT_ORDERS; ``reverse`` flips it).

        By started (the default), without a filter this is one indexed query; with
        one, the store is searched newest first in slices of SEARCH_SLICE rows, each
        its own short statement (so the writer gets a gap after each), until ``limit``
        rows match, the store ends, or ``budget_s`` seconds pass (then
        ``Window.searched`` says how far it got). Any other sort orders the newest
        SORT_SCOPE rows (``sorted_scope``), in one statement: only created_at has an
        index an ORDER BY can walk, and sorting a million rows per refresh is not
        bounded work (DESIGN.md promise 2). A live status is classified here, from the
        step rows and ``judgement``.
        """
        try:
            wanted = filters.parse(text, judgement.now)
        except filters.FilterError:
            wanted = filters.Filter(words=tuple((text or "").split()))
        status = wanted.status or status
        if sort != "started" and sort in SORT_ORDERS:
            return self._sorted(judgement, wanted, status, sort, reverse, limit)
        if not wanted and status is None and not reverse:
            return self._newest(limit)
        return self._search(judgement, wanted, status, reverse, limit, budget_s)

    def _search(self, judgement: Judgement, wanted: filters.Filter, status: Status | None,
                reverse: bool, limit: int, budget_s: float) -> Window:
        """The slice search of ``executions`` (newest first; oldest first when
        ``reverse``). ``since`` bounds the walk itself, so it ends at that time."""
        condition, params = wanted.where()
        condition, params = with_status(condition, params, status)
        live = status is not None and status.value not in FINAL_EXECUTION
        way, before = ("ASC", ">") if reverse else ("DESC", "<")
        found: list[Execution] = []
        cursor: tuple[str, int] | None = None
        searched = 0
        deadline = time.monotonic() + budget_s
        while True:
            started = time.monotonic()
            ranges, bounds = [], []
            if wanted.since is not None:
                ranges.append("created_at >= ?")
                bounds.append(wanted.since.isoformat())
            if cursor is not None:
                ranges.append(f"(created_at {before} ? OR (created_at = ? AND rowid {before} ?))")
                bounds += [cursor[0], cursor[0], cursor[1]]
            after = ("WHERE " + " AND ".join(ranges)) if ranges else ""
            scanned = self.rows(
                f"SELECT rowid, created_at, {condition} FROM executions {after} "
                f"ORDER BY created_at {way}, rowid {way} LIMIT ?",
                [*params, *bounds, SEARCH_SLICE])
            searched += len(scanned)
            # Read no more rows than can still be shown (a live status may drop some).
            matched = [r[0] for r in scanned if r[2]]
            hits = self._by_rowid(matched if live else matched[:limit - len(found)])
            if reverse:
                hits.reverse()
            if live:
                hits = [e for e in hits if e.effective_status(judgement) == status]
            found += hits
            if len(found) >= limit or len(scanned) < SEARCH_SLICE or scanned[-1][1] is None:
                return Window(tuple(found[:limit]))
            if time.monotonic() > deadline:
                return Window(tuple(found), searched=searched)
            cursor = (scanned[-1][1], int(scanned[-1][0]))
            # No statement, and so no snapshot, between slices: a gap as long as the
            # slice took lets a waiting checkpoint through (SQLITE_WAL.md §5).
            time.sleep(time.monotonic() - started)

    def _sorted(self, judgement: Judgement, wanted: filters.Filter, status: Status | None,
                sort: str, reverse: bool, limit: int) -> Window:
        """The newest SORT_SCOPE rows, filtered and ordered by ``sort`` in one statement
        (a temporary b-tree of at most SORT_SCOPE rows)."""
        condition, params = wanted.where()
        condition, params = with_status(condition, params, status)
        live = status is not None and status.value not in FINAL_EXECUTION
        # isoformat() is digits, '-', ':', 'T' and '.': safe as a literal.
        now = f"'{judgement.now.isoformat()}'"
        order = ", ".join(
            f"{expr.replace(':now', now)} {'DESC' if descending != reverse else 'ASC'}"
            for expr, descending in SORT_ORDERS[sort])
        # A live status is judged after the read: its rows are few, so read them all.
        cut = "" if live else "LIMIT ?"
        rows = self.rows(
            f"SELECT {self._select['executions']} FROM (SELECT * FROM executions "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?) "
            f"WHERE {condition} ORDER BY {order} {cut}",
            [SORT_SCOPE, *params, *([] if live else [limit])])
        found = self._with_steps(rows)
        if live:
            found = [e for e in found if e.effective_status(judgement) == status]
        return Window(tuple(found[:limit]), sorted_scope=SORT_SCOPE)

    def _newest(self, limit: int) -> Window:
        """The newest ``limit`` executions. When a page they need is corrupt, the most
        that can be read (halving the window) with ``damaged_after`` set, so one bad
        page further down never blanks the rows above it."""
        wanted = limit
        while True:
            try:
                rows = self.rows(
                    f"SELECT {self._select['executions']} FROM executions "
                    "ORDER BY created_at DESC, rowid DESC LIMIT ?", [limit])
                executions = tuple(self._with_steps(rows))
            except StoreDamaged:
                if limit <= 1:
                    raise
                limit //= 2
                continue
            return Window(executions, damaged_after=None if limit == wanted else limit)

    def _by_rowid(self, rowids: list[int]) -> list[Execution]:
        """Executions by rowid, newest first, with step aggregates."""
        rows = []
        for chunk in chunks(rowids):
            rows += self.rows(
                f"SELECT {self._select['executions']} FROM executions "
                f"WHERE rowid IN ({','.join('?' * len(chunk))}) "
                "ORDER BY created_at DESC, rowid DESC", chunk)
        return self._with_steps(rows)

    def executions_by_id(self, ids: Iterable[str]) -> list[Execution]:
        """The executions with these ids, with step aggregates, in no set order."""
        return [e for e, _steps in self.executions_with_steps(ids)]

    def count(self, table: str) -> int:
        """Rows in ``table`` (0 when the schema has no such table): a full count, for
        one-shot output, not for every refresh."""
        if table not in self._has:
            return 0
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])

    # -- one execution -----------------------------------------------------
    def detail(self, execution_id: str) -> ExecutionDetail | None:
        """The execution, its steps (by index) and artifacts; None once it is gone."""
        rows = self.rows(
            f"SELECT {self._select['executions']} FROM executions WHERE id = ?", [execution_id]
        )
        if not rows:
            return None
        steps = sorted(
            (step_row(r) for r in self._step_rows([execution_id], MAX_STEPS_PER_EXECUTION)),
            key=lambda s: (s.index, s.created_at or datetime.min),
        )
        execution = self._aggregate(execution_row(rows[0]), list(steps))
        artifacts: tuple[Artifact, ...] = ()
        if "artifacts" in self._has:
            rows = self.rows(
                f"SELECT {self._select['artifacts']} FROM artifacts WHERE execution_id = ? "
                f"LIMIT {MAX_ARTIFACTS}",
                [execution_id],
            )
            artifacts = tuple(sorted((artifact_row(r) for r in rows), key=artifact_order))
        log_paths = {s.id: self.paths.step_log(s.execution_id, s.index, s.id) for s in steps}
        return ExecutionDetail(execution, tuple(steps), artifacts, log_paths)

