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

import os
import sqlite3
from dataclasses import replace
from datetime import datetime
from typing import Iterable, Sequence

import sqlite_utils

from .connection import StoreUnavailable, connect_readonly, explain, fetch_all
from .locate import StorePaths
from .models import (
    FINAL_EXECUTION,
    Artifact,
    Counts,
    Execution,
    ExecutionDetail,
    Status,
    Step,
    parse_timestamp,
)

EXECUTION_COLUMNS = (
    "id", "name", "command", "working_directory", "status", "exit_code", "error_message",
    "created_at", "started_at", "completed_at", "environment", "user_name", "tags",
    "total_steps", "completed_steps", "metadata",
)
STEP_COLUMNS = (
    "id", "execution_id", "name", "description", "step_index", "status", "exit_code",
    "error_message", "created_at", "started_at", "completed_at", "estimated_duration",
    "metadata",
)
ARTIFACT_COLUMNS = (
    "id", "execution_id", "step_id", "name", "file_path", "file_name", "file_size",
    "mime_type", "artifact_type", "created_at",
)
LIVE_STATUSES = ("pending", "running")
MAX_STEPS_PER_EXECUTION = 10_000
MAX_ARTIFACTS = 1_000
MAX_LIVE_ROWS = 1_000
SQL_VARIABLE_CHUNK = 500


class StoreReader:
    """Reads one store through one read-only connection.

    ``stall_after`` is in seconds (see ``Execution.effective_status``). Use from
    one thread at a time. ``open()`` raises StoreUnavailable; every
    other method raises StoreUnavailable when the database goes away or turns
    unreadable, and the caller shows that and calls ``open()`` again later.
    """

    def __init__(self, paths: StorePaths, *, stall_after: float = 60.0) -> None:
        self.paths = paths
        self.stall_after = stall_after
        self.conn: sqlite3.Connection | None = None
        self.journal_mode = "?"
        self._select: dict[str, str] = {}

    # -- connection ------------------------------------------------------
    def open(self) -> None:
        """Connect and introspect the schema; raises StoreUnavailable."""
        self.close()
        conn = connect_readonly(self.paths.database)
        try:
            db = sqlite_utils.Database(conn)
            tables = set(db.table_names())
            if "executions" not in tables:
                raise StoreUnavailable(
                    f"{self.paths.database} has no executions table: "
                    "is this a StepFlow Monitor database?"
                )
            self._select = {
                table: _select_list(
                    columns, set(db[table].columns_dict) if table in tables else set()
                )
                for table, columns in (
                    ("executions", EXECUTION_COLUMNS),
                    ("steps", STEP_COLUMNS),
                    ("artifacts", ARTIFACT_COLUMNS),
                )
            }
            self._has = tables
            self.journal_mode = str(fetch_all(conn, "PRAGMA journal_mode")[0][0]).lower()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(explain(exc, self.paths.database)) from None
        except StoreUnavailable:
            conn.close()
            raise
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _rows(self, sql: str, params: Sequence | dict = ()) -> list:
        if self.conn is None:
            self.open()
        try:
            return fetch_all(self.conn, sql, params)
        except sqlite3.Error as exc:
            raise StoreUnavailable(explain(exc, self.paths.database)) from None

    def data_version(self) -> int:
        """``PRAGMA data_version``: rises with each commit by another connection."""
        return int(self._rows("PRAGMA data_version")[0][0])

    # -- executions --------------------------------------------------------
    def executions(
        self,
        now: datetime,
        *,
        limit: int = 100,
        text: str | None = None,
        status: Status | None = None,
    ) -> list[Execution]:
        """The newest ``limit`` executions matching ``text`` (name, user, id or
        command, case-insensitive substring) and effective ``status``.

        A live status (running, stalled, pending) is pre-filtered in SQL to the
        newest MAX_LIVE_ROWS rows stored as pending or running, classified here, and
        the first ``limit`` matches kept (classification needs the step rows, so
        SQL alone cannot apply the LIMIT).
        """
        where, params = [], []
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(name LIKE ? ESCAPE '\\' OR user_name LIKE ? ESCAPE '\\' "
                "OR id LIKE ? ESCAPE '\\' OR command LIKE ? ESCAPE '\\')"
            )
            params += [like] * 4
        if status is not None:
            if status.value in FINAL_EXECUTION:
                where.append("status = ?")
                params.append(status.value)
            else:
                where.append(f"status IN {LIVE_STATUSES}")
        sql = f"SELECT {self._select['executions']} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ?"
        live = status is not None and status.value not in FINAL_EXECUTION
        rows = self._rows(sql, [*params, MAX_LIVE_ROWS if live else limit])
        result = self._with_steps([_execution(r) for r in rows])
        if live:
            stall = self.stall_after
            result = [e for e in result if e.effective_status(now, stall) == status][:limit]
        return result

    def executions_by_id(self, ids: Iterable[str]) -> list[Execution]:
        """The executions with these ids, with step aggregates, in no set order."""
        rows = []
        for chunk in chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            rows += self._rows(
                f"SELECT {self._select['executions']} FROM executions WHERE id IN ({marks})", chunk
            )
        return self._with_steps([_execution(r) for r in rows])

    def stored_status_counts(self) -> dict[str, int]:
        """Executions per stored status (a scan of the ``status`` index: it grows with
        the store, so callers cache it; see ``Refresher``)."""
        return dict(self._rows("SELECT status, count(*) FROM executions GROUP BY status"))

    def counts(
        self,
        *,
        stored: dict[str, int] | None = None,
        live: tuple[Execution, ...] | None = None,
        tables: bool = False,
    ) -> Counts:
        """Counts per stored status (``stored_status_counts()`` when None) and the
        live executions (stored pending or running, at most MAX_LIVE_ROWS;
        ``live_executions()`` when None) for ``Counts.by_status``. ``tables`` adds the step and artifact row counts
        (full counts: for one-shot output, not for every refresh)."""
        if stored is None:
            stored = self.stored_status_counts()
        return Counts(
            executions=sum(stored.values()),
            steps=self._count("steps") if tables else None,
            artifacts=self._count("artifacts") if tables else None,
            stored=stored,
            live=tuple(self.live_executions()) if live is None else live,
        )

    def _count(self, table: str) -> int:
        if table not in self._has:
            return 0
        return int(self._rows(f"SELECT count(*) FROM {table}")[0][0])

    # -- one execution -----------------------------------------------------
    def detail(self, execution_id: str) -> ExecutionDetail | None:
        """The execution, its steps (by index) and artifacts; None once it is gone."""
        rows = self._rows(
            f"SELECT {self._select['executions']} FROM executions WHERE id = ?", [execution_id]
        )
        if not rows:
            return None
        steps = sorted(
            (_step(r) for r in self._step_rows([execution_id], MAX_STEPS_PER_EXECUTION)),
            key=lambda s: (s.index, s.created_at or datetime.min),
        )
        execution = self._aggregate(_execution(rows[0]), list(steps))
        artifacts: tuple[Artifact, ...] = ()
        if "artifacts" in self._has:
            rows = self._rows(
                f"SELECT {self._select['artifacts']} FROM artifacts WHERE execution_id = ? "
                f"LIMIT {MAX_ARTIFACTS}",
                [execution_id],
            )
            artifacts = tuple(sorted((_artifact(r) for r in rows), key=_artifact_order))
        log_paths = {s.id: self.paths.step_log(s.execution_id, s.index, s.id) for s in steps}
        return ExecutionDetail(execution, tuple(steps), artifacts, log_paths)

    # -- changes, for the event stream --------------------------------------
    def max_rowids(self) -> tuple[int, int]:
        """(executions, steps) largest rowid; INSERT OR REPLACE gives every save a
        new, larger rowid, so ``rowid > mark`` finds every save since the mark."""
        executions = self._rows("SELECT max(rowid) FROM executions")[0][0] or 0
        steps = 0
        if "steps" in self._has:
            steps = self._rows("SELECT max(rowid) FROM steps")[0][0] or 0
        return int(executions), int(steps)

    def executions_saved_since(self, mark: int, limit: int = 10_000) -> list:
        """Execution rows saved after rowid ``mark``: [(rowid, Execution)] in save
        order, at most ``limit``."""
        return [
            (r[0], _execution(r[1:]))
            for r in self._rows(
                f"SELECT rowid, {self._select['executions']} FROM executions "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                [mark, limit],
            )
        ]

    def saved_since(self, execution_mark: int, step_mark: int, limit: int = 10_000):
        """Rows saved after the marks: (executions [(rowid, Execution)], steps
        [(rowid, Step)]), each in save order, at most ``limit`` of each."""
        executions = self.executions_saved_since(execution_mark, limit)
        steps = []
        if "steps" in self._has:
            steps = [
                (r[0], _step(r[1:]))
                for r in self._rows(
                    f"SELECT rowid, {self._select['steps']} FROM steps "
                    "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    [step_mark, limit],
                )
            ]
        return executions, steps

    def live_steps(self) -> list[Step]:
        """Steps stored as running or pending (``steps(status)`` is indexed)."""
        if "steps" not in self._has:
            return []
        return [
            _step(r)
            for r in self._rows(
                f"SELECT {self._select['steps']} FROM steps WHERE status IN {LIVE_STATUSES} "
                f"LIMIT {MAX_LIVE_ROWS}"
            )
        ]

    def live_executions(self) -> list[Execution]:
        """Executions stored as pending or running, with step aggregates."""
        rows = self._rows(
            f"SELECT {self._select['executions']} FROM executions "
            f"WHERE status IN {LIVE_STATUSES} LIMIT {MAX_LIVE_ROWS}"
        )
        return self._with_steps([_execution(r) for r in rows])

    # -- helpers -----------------------------------------------------------
    def _step_rows(self, execution_ids: list[str], limit: int) -> list:
        if "steps" not in self._has or not execution_ids:
            return []
        rows = []
        for chunk in chunks(execution_ids):
            marks = ",".join("?" * len(chunk))
            rows += self._rows(
                f"SELECT {self._select['steps']} FROM steps WHERE execution_id IN ({marks}) "
                "LIMIT ?",
                [*chunk, limit * len(chunk)],
            )
        return rows

    def _with_steps(self, executions: list[Execution]) -> list[Execution]:
        """Attach step aggregates (and log mtimes for live runs) to each execution."""
        if not executions:
            return executions
        by_execution: dict[str, list[Step]] = {}
        for row in self._step_rows([e.id for e in executions], MAX_STEPS_PER_EXECUTION):
            step = _step(row)
            by_execution.setdefault(step.execution_id, []).append(step)
        return [self._aggregate(e, by_execution.get(e.id, [])) for e in executions]

    def _aggregate(self, execution: Execution, steps: list[Step]) -> Execution:
        if not steps:
            return execution
        steps.sort(key=lambda s: s.index)
        # A step the service never saved as finished stays `running` for ever: the
        # current one is the newest running step, and a finished run has none.
        final = execution.stored_status in FINAL_EXECUTION
        running = None if final else next(
            (s for s in reversed(steps) if s.status == "running"), None)
        started = [s.started_at for s in steps if s.started_at]
        changes = [t for t in (s.last_saved for s in steps) if t]
        if execution.stored_status not in FINAL_EXECUTION and running is None:
            changes += self._log_mtimes(steps)
        return replace(
            execution,
            steps_known=len(steps),
            steps_finished=sum(s.finished for s in steps),
            steps_failed=sum(s.status == "failed" for s in steps),
            running_step=running.name if running else None,
            last_step=steps[-1].name,
            first_step_started=min(started) if started else None,
            last_change=max(changes) if changes else None,
        )

    def _log_mtimes(self, steps: list[Step]) -> list[datetime]:
        # os.stat opens nothing, so it is safe beside live SQLite connections.
        times = []
        for step in steps:
            try:
                mtime = os.stat(self.paths.step_log(step.execution_id, step.index, step.id)).st_mtime
            except OSError:
                continue
            times.append(datetime.fromtimestamp(mtime))
        return times


def _select_list(wanted: Sequence[str], present: set[str]) -> str:
    return ", ".join(c if c in present else f"NULL AS {c}" for c in wanted)


def chunks(items: Sequence, size: int = SQL_VARIABLE_CHUNK):
    """``items`` in lists of at most ``size``: one ``IN (...)`` query each, under
    SQLite's limit on bound variables."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: object, default: int | None = None) -> int | None:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _execution(row: Sequence) -> Execution:
    (id_, name, command, workdir, status, exit_code, error, created, started, completed,
     environment, user, tags, total, done, metadata) = row
    return Execution(
        id=_text(id_) or "",
        name=_text(name) or "",
        stored_status=(_text(status) or "").lower(),
        command=_text(command) or "",
        working_directory=_text(workdir),
        exit_code=_int(exit_code),
        error_message=_text(error),
        created_at=parse_timestamp(created),
        started_at=parse_timestamp(started),
        completed_at=parse_timestamp(completed),
        environment=_text(environment),
        user_name=_text(user),
        tags=_text(tags),
        total_steps=_int(total, 0),
        completed_steps=_int(done, 0),
        metadata=_text(metadata),
        created_at_text=_text(created),
        started_at_text=_text(started),
        completed_at_text=_text(completed),
    )


def _step(row: Sequence) -> Step:
    (id_, execution_id, name, description, index, status, exit_code, error, created,
     started, completed, estimated, metadata) = row
    return Step(
        id=_text(id_) or "",
        execution_id=_text(execution_id) or "",
        index=_int(index, 0),
        name=_text(name) or "",
        status=(_text(status) or "").lower(),
        description=_text(description),
        exit_code=_int(exit_code),
        error_message=_text(error),
        created_at=parse_timestamp(created),
        started_at=parse_timestamp(started),
        completed_at=parse_timestamp(completed),
        estimated_duration=_float(estimated),
        metadata=_text(metadata),
    )


def _artifact(row: Sequence) -> Artifact:
    (id_, execution_id, step_id, name, file_path, file_name, size, mime, kind, created) = row
    path = _text(file_path) or ""
    return Artifact(
        id=_text(id_) or "",
        execution_id=_text(execution_id) or "",
        step_id=_text(step_id),
        name=_text(name) or "",
        file_path=path,
        file_name=_text(file_name),
        file_size=_int(size, 0),
        mime_type=_text(mime),
        artifact_type=_text(kind),
        created_at=parse_timestamp(created),
        exists=bool(path) and os.path.exists(path),
    )


def _artifact_order(artifact: Artifact):
    return (artifact.created_at or datetime.min, artifact.name)


