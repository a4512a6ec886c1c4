"""StepFlow consistency checks: what the rows and the log files say about each other.

Each check returns a :class:`~stepflow_top.wal.integrity.CheckResult`, like the
integrity checks, so this module sits above both ``store`` and ``wal`` (beside
``checks.py``, which runs them together for ``--check``). Every query
is bounded: tables are walked in pages of ``batch`` rows by primary key, each page one
short query fully fetched, so no snapshot is held for longer than one page takes. A
finding is confirmed by a second look before it is reported, so a row or file caught
half-way through a save or a housekeeping delete is not reported.

What the service does (STEPFLOW_STORE.md, and its ``execution_engine.py`` /
``persistence.py``): the execution row is saved when created (``pending``) and when it
ends (final status and totals: ``total_steps`` = steps started, ``completed_steps`` =
``STEP_COMPLETE`` markers, each of which saves its step as ``completed``). A step's log
file is written only when the step is saved **with output lines**
(``_save_step_logs_async``: ``if not step.logs: return``), so a finished step that
printed nothing legitimately has no log file: ``missing_logs`` is reported as a note
(``ok`` stays True). A step completed implicitly (no ``STEP_COMPLETE``) is not saved
again and stays ``running`` in its row for ever.

Storage layout: ``<root>/database/stepflow.db``,
``<root>/executions/<execution_id>/step_<step_index>_<step_id>.log``. Timestamps are ISO
local time without a zone.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .store.connection import StoreUnavailable, connect_readonly
from .store.locate import locate_store
from .store.models import FINAL_EXECUTION, parse_timestamp
from .store.queries import chunks
from .wal.integrity import CheckResult

__all__ = [
    "CONSISTENCY_CHECKS",
    "FINAL_STATUSES",
    "run_consistency_checks",
]

#: Names of the results, in the order they are returned.
CONSISTENCY_CHECKS = (
    "orphan_rows", "execution_totals", "stuck_executions", "orphaned_logs", "missing_logs",
)
#: Stored execution statuses that are final (the row is not saved again).
FINAL_STATUSES = tuple(sorted(FINAL_EXECUTION))

_LOG_RE = re.compile(r"^step_(-?\d+)_(.+)\.log$")
_MAX_DETAILS = 100


def _age_s(now: datetime, *moments: datetime | None) -> float | None:
    known = [m for m in moments if m is not None]
    return (now - max(known)).total_seconds() if known else None


class _Stopped(Exception):
    pass


@dataclass
class _Ctx:
    conn: sqlite3.Connection
    root: Path
    now: datetime
    batch: int
    cancel: threading.Event | None
    deadline: float | None
    listings: dict[str, dict[str, float] | None] = field(default_factory=dict)

    def check_stop(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Stopped("cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stopped("timeout")

    def pages(self, sql: str, params: Sequence[Any] = ()) -> Iterator[list[tuple]]:
        """Run ``sql`` (which must select the key first and have ``WHERE key > ?
        ... ORDER BY key LIMIT ?`` placeholders last) page by page."""
        last = ""
        while True:
            self.check_stop()
            rows = self.conn.execute(sql, (*params, last, self.batch)).fetchall()
            if not rows:
                return
            yield rows
            if len(rows) < self.batch:
                return
            last = rows[-1][0]

    def logs_of(self, execution_id: str) -> dict[str, float] | None:
        """{file name: mtime} of ``executions/<id>/`` (None when the folder is absent)."""
        if execution_id not in self.listings:
            folder = self.root / "executions" / execution_id
            try:
                listing = {}
                with os.scandir(folder) as it:
                    for entry in it:
                        try:
                            listing[entry.name] = entry.stat().st_mtime
                        except OSError:
                            continue
            except OSError:
                listing = None
            self.listings[execution_id] = listing
        return self.listings[execution_id]


def _cap(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_DETAILS:
        return lines
    return lines[:_MAX_DETAILS] + [f"... and {len(lines) - _MAX_DETAILS} more"]


def _result(name: str, t0: float, problems: list[str], notes: Iterable[str] = ()) -> CheckResult:
    details = _cap(problems) + _cap([f"note: {n}" for n in notes])
    return CheckResult(name, not problems, details, time.monotonic() - t0,
                       "ok" if not problems else "failed")


# ------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------


def _orphan_rows(ctx: _Ctx) -> CheckResult:
    t0 = time.monotonic()
    steps: list[str] = []
    for rows in ctx.pages(
        "SELECT s.id, s.execution_id, s.step_index, "
        "EXISTS (SELECT 1 FROM executions e WHERE e.id = s.execution_id) "
        "FROM steps s WHERE s.id > ? ORDER BY s.id LIMIT ?"
    ):
        steps += [r[0] for r in rows if not r[3]]
    arts: list[str] = []
    for rows in ctx.pages(
        "SELECT a.id, a.execution_id, a.step_id, "
        "EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id), "
        "a.step_id IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE s.id = a.step_id) "
        "FROM artifacts a WHERE a.id > ? ORDER BY a.id LIMIT ?"
    ):
        arts += [r[0] for r in rows if not (r[3] and r[4])]
    problems: list[str] = []
    # Confirm in a fresh query (a housekeeping delete may have been half-way).
    for chunk in chunks(steps, 500):
        q = ",".join("?" * len(chunk))
        for sid, eid, idx in ctx.conn.execute(
            f"SELECT s.id, s.execution_id, s.step_index FROM steps s WHERE s.id IN ({q}) "
            "AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = s.execution_id)",
            chunk,
        ).fetchall():
            problems.append(f"step {sid} (index {idx}) belongs to execution {eid}, "
                            "which does not exist")
    for chunk in chunks(arts, 500):
        q = ",".join("?" * len(chunk))
        for aid, eid, sid, e_ok, s_ok in ctx.conn.execute(
            f"SELECT a.id, a.execution_id, a.step_id, "
            "EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id), "
            "a.step_id IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE s.id = a.step_id) "
            f"FROM artifacts a WHERE a.id IN ({q})",
            chunk,
        ).fetchall():
            if not e_ok:
                problems.append(f"artifact {aid} belongs to execution {eid}, which does not exist")
            elif not s_ok:
                problems.append(f"artifact {aid} names step {sid}, which does not exist")
    return _result("orphan_rows", t0, problems)


_EXEC_SQL = (
    "WITH page AS (SELECT id, name, status, total_steps, completed_steps, created_at "
    "FROM executions WHERE id > ? ORDER BY id LIMIT ?) "
    "SELECT p.id, p.name, p.status, p.total_steps, p.completed_steps, p.created_at, "
    "count(s.id), coalesce(sum(s.status = 'completed'), 0), "
    "coalesce(sum(s.status = 'running'), 0), "
    "max(max(coalesce(s.created_at, ''), coalesce(s.started_at, ''), "
    "coalesce(s.completed_at, ''))) "
    "FROM page p LEFT JOIN steps s ON s.execution_id = p.id GROUP BY p.id ORDER BY p.id"
)


def _execution_checks(
    ctx: _Ctx, stuck_pending_after_s: float, stuck_running_after_s: float
) -> tuple[CheckResult, CheckResult]:
    """One walk over executions (+ one over running steps): totals and stuck runs."""
    t0 = time.monotonic()
    totals: list[str] = []
    stuck: list[str] = []
    notes: list[str] = []
    for rows in ctx.pages(_EXEC_SQL):
        for eid, name, status, total, done, created, n, n_done, n_run, last_step in rows:
            label = f"execution {eid} ({name!s})"
            if status in FINAL_STATUSES:
                if (total or 0) != n or (done or 0) != n_done:
                    totals.append(
                        f"{label} is {status} with total_steps={total}, completed_steps="
                        f"{done}, but has {n} step rows of which {n_done} completed")
            elif status in ("pending", "running") and n_run == 0:
                last_log = max((ctx.logs_of(eid) or {}).values(), default=None)
                age = _age_s(ctx.now, parse_timestamp(created), parse_timestamp(last_step),
                             datetime.fromtimestamp(last_log) if last_log else None)
                if age is None:
                    notes.append(f"{label}: timestamps cannot be read")
                elif age > stuck_pending_after_s:
                    what = f"{n} step(s), none running" if n else "no steps"
                    stuck.append(f"{label} is stored {status} with {what}; nothing changed "
                                 f"for {age / 3600:.1f} h")
    totals_result = _result("execution_totals", t0, totals)
    for rows in ctx.pages(
        "SELECT s.id, s.execution_id, s.step_index, s.name, s.created_at, s.started_at, "
        "(SELECT e.status FROM executions e WHERE e.id = s.execution_id) "
        "FROM steps s WHERE s.status = 'running' AND s.id > ? ORDER BY s.id LIMIT ?"
    ):
        for sid, eid, idx, name, created, started, exec_status in rows:
            label = f"step {sid} ({name!s}, index {idx}) of execution {eid}"
            if exec_status in FINAL_STATUSES:
                stuck.append(f"{label} is still running although its execution is "
                             f"{exec_status}")
                continue
            mtime = (ctx.logs_of(eid) or {}).get(f"step_{idx}_{sid}.log")
            age = _age_s(ctx.now, parse_timestamp(started), parse_timestamp(created),
                         datetime.fromtimestamp(mtime) if mtime else None)
            if age is None:
                notes.append(f"{label}: timestamps cannot be read")
            elif age > stuck_running_after_s:
                stuck.append(f"{label} has been running for {age / 3600:.1f} h "
                             "with no change")
    stuck_result = _result("stuck_executions", t0, stuck, notes)
    return totals_result, stuck_result


def _log_checks(ctx: _Ctx) -> tuple[CheckResult, CheckResult]:
    """Orphaned log files (no such step, or in the wrong folder) and finished steps
    without a log file."""
    t0 = time.monotonic()
    base = ctx.root / "executions"
    files: list[tuple[str, str, int, str]] = []  # (folder, file name, index, step id)
    folders: list[str] = []
    try:
        with os.scandir(base) as it:
            folders = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        folders = []
    for folder in folders:
        ctx.check_stop()
        for fname in sorted(ctx.logs_of(folder) or {}):
            m = _LOG_RE.match(fname)
            if m:
                files.append((folder, fname, int(m.group(1)), m.group(2)))
    problems: list[str] = []
    existing_execs: set[str] = set()
    for chunk in chunks(folders, 500):
        q = ",".join("?" * len(chunk))
        existing_execs.update(r[0] for r in ctx.conn.execute(
            f"SELECT id FROM executions WHERE id IN ({q})", chunk).fetchall())
    found: dict[str, tuple[str, int]] = {}
    for chunk in chunks([f[3] for f in files], 500):
        ctx.check_stop()
        q = ",".join("?" * len(chunk))
        for sid, eid, idx in ctx.conn.execute(
            f"SELECT id, execution_id, step_index FROM steps WHERE id IN ({q})", chunk
        ).fetchall():
            found[sid] = (eid, idx)
    for folder, fname, idx, sid in files:
        rel = f"executions/{folder}/{fname}"
        if not (base / folder / fname).exists():
            continue  # deleted meanwhile (housekeeping)
        row = found.get(sid)
        if row is None:
            why = "" if folder in existing_execs else f"; execution {folder} does not exist"
            problems.append(f"{rel}: no step {sid}{why}")
        elif row[0] != folder:
            problems.append(f"{rel}: step {sid} belongs to execution {row[0]}")
        elif row[1] != idx:
            problems.append(f"{rel}: step {sid} has index {row[1]}, the file name says {idx}")
    orphaned = _result("orphaned_logs", t0, problems)

    t1 = time.monotonic()
    missing: list[str] = []
    for rows in ctx.pages(
        "SELECT s.id, s.execution_id, s.step_index, s.status, s.name "
        "FROM steps s WHERE s.id > ? ORDER BY s.id LIMIT ?"
    ):
        for sid, eid, idx, status, name in rows:
            if status not in ("completed", "failed"):
                continue
            if f"step_{idx}_{sid}.log" not in (ctx.logs_of(eid) or {}):
                missing.append(f"{status} step {sid} ({name!s}, index {idx}) of execution "
                               f"{eid} has no log file (it may have printed nothing)")
    notes = missing
    res = CheckResult("missing_logs", True, _cap([f"note: {n}" for n in notes]),
                      time.monotonic() - t1, "ok")
    return orphaned, res


# ------------------------------------------------------------------------------------


def run_consistency_checks(
    path: str | os.PathLike[str],
    *,
    now: datetime | None = None,
    stuck_pending_after_s: float = 3600.0,
    stuck_running_after_s: float = 6 * 3600.0,
    batch: int = 2000,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
    deadline_s: float | None = None,
) -> list[CheckResult]:
    """Run the StepFlow consistency checks on the store at ``path`` (root,
    ``database/`` or the ``.db`` file) with its own read-only connection.

    Returns one :class:`CheckResult` per name in :data:`CONSISTENCY_CHECKS`:

    * ``orphan_rows``: steps or artifacts whose execution (or artifact's step) is missing;
    * ``execution_totals``: final executions whose ``total_steps`` / ``completed_steps``
      disagree with their step rows;
    * ``stuck_executions``: executions stored ``pending`` with no running step and
      nothing changed (rows or log files) for ``stuck_pending_after_s`` seconds; steps
      ``running`` with no change for ``stuck_running_after_s`` seconds, or although
      their execution ended;
    * ``orphaned_logs``: log files with no matching step row (or in the wrong folder);
    * ``missing_logs``: finished steps without a log file, as notes (``ok`` stays True).

    ``now``: local naive datetime to measure ages against (default: now). ``batch``:
    rows per query. When the store cannot be opened, or the run is cancelled / past
    ``deadline_s`` seconds, the results say so (status ``error`` / ``cancelled`` /
    ``timeout``); never raises for store problems.
    """
    t0 = time.monotonic()
    now = now or datetime.now()
    say = progress or (lambda f, p: None)

    def all_failed(status: str, why: str) -> list[CheckResult]:
        return [CheckResult(n, False, [why], time.monotonic() - t0, status)
                for n in CONSISTENCY_CHECKS]

    paths = locate_store(path)
    root, db = paths.root, paths.database
    if not db.is_file():
        return all_failed("error", f"no StepFlow database at {db}")
    try:
        conn = connect_readonly(db)
    except StoreUnavailable as e:
        return all_failed("error", str(e))
    ctx = _Ctx(conn, root, now, batch, cancel,
               None if deadline_s is None else t0 + deadline_s)
    done: list[CheckResult] = []
    try:
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
        lacking = [t for t in ("executions", "steps", "artifacts") if t not in tables]
        if lacking:
            return all_failed("error", f"not a StepFlow store: no table {', '.join(lacking)}")
        say(0.0, "rows without an execution")
        done.append(_orphan_rows(ctx))
        say(0.25, "execution totals and stuck runs")
        done.extend(_execution_checks(ctx, stuck_pending_after_s, stuck_running_after_s))
        say(0.6, "log files")
        done.extend(_log_checks(ctx))
    except _Stopped as s:
        status = str(s)
        why = "cancelled" if status == "cancelled" else f"stopped at the {deadline_s:g} s deadline"
        names = {r.name for r in done}
        done += [CheckResult(n, False, [why], 0.0, status)
                 for n in CONSISTENCY_CHECKS if n not in names]
    except sqlite3.Error as e:
        names = {r.name for r in done}
        done += [CheckResult(n, False, [f"reading the store: {e}"], 0.0, "error")
                 for n in CONSISTENCY_CHECKS if n not in names]
    finally:
        conn.close()
    say(1.0, "done")
    order = {n: i for i, n in enumerate(CONSISTENCY_CHECKS)}
    return sorted(done, key=lambda r: order.get(r.name, 99))
