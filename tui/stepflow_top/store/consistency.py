"""StepFlow consistency checks: what the rows and the log files say about each other.

They read a **private copy** of the database (the integrity runner's, see
``live.checks``), so their long scans hold no snapshot of the live database and cannot
starve the writer's checkpoints (SQLITE_WAL.md §5). What they find in the copy is then
confirmed on the live database with short by-rowid queries in chunks (a copy is a moment
ago; a row saved since, or a housekeeping delete half-way, is not reported).

What the service does normally is never a finding (STEPFLOW_STORE.md, "What the real
service does"): a failed or cancelled run (cancel is stored failed/-15), a step that
printed nothing (its log file is written only when it has output lines), a step left
``running`` inside a final execution (an implicit end is never saved). Findings:

* ``orphan_rows`` (CRITICAL): steps or artifacts whose execution, or artifact's step,
  does not exist;
* ``execution_totals`` (CRITICAL): a final execution whose ``total_steps`` (steps
  started) or ``completed_steps`` (``STEP_COMPLETE`` markers, each saving its step
  ``completed``) contradict its step rows;
* ``lost_runs`` (WARNING): a non-final execution while no service has the database open
  (``writer_attached`` False: nothing will ever update it); when that is not known
  (None) or a service is attached (True, possibly a restarted one), a run with nothing
  saved for ``stall_after_s`` (no running step) or ``step_stall_after_s`` (a running
  step) seconds is *stalled*: never called lost without knowing;
* ``log_files`` (WARNING): ``step_<index>_<step id>.log`` files with no such step, in
  another execution's folder, with another index, or that are not regular files.

Times: stored timestamps are the writer's local time with no zone; ages are measured on
the writer's clock, estimated from the newest stored time and the database files'
modification time (:func:`writer_now`), so a service in another zone raises no alarm.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ..wal.integrity import CheckResult, Finding, State
from ..wal.readonly import fetch_all
from .connection import StoreUnavailable
from .log_listing import LogFile, LogFolders
from .models import FINAL_EXECUTION, parse_timestamp
from .rows import chunks

__all__ = ["CONSISTENCY_CHECKS", "Consistency", "RunCounts", "check_consistency", "writer_now"]

#: Names of the results, in the order they are returned.
CONSISTENCY_CHECKS = ("orphan_rows", "execution_totals", "lost_runs", "log_files")

_FINAL = tuple(sorted(FINAL_EXECUTION))
_IN_FLIGHT = ("pending", "running")  # "running": what a SIGTERM restart saves
_MAX_FINDINGS = 100
_CONFIRM_CHUNK = 500
_MAX_ZONE_OFFSET = timedelta(hours=15)  # UTC-12 .. UTC+14, and some slack

#: Asks whether to stop: None, or (status, reason) with status cancelled/timeout.
Stop = Callable[[], "tuple[str, str] | None"]
#: Opens a read-only connection to the live database (raises on failure).
OpenLive = Callable[[], sqlite3.Connection]


@dataclass(frozen=True)
class RunCounts:
    """Executions in the store: ``running`` are the non-final ones not ``lost``
    (``stalled`` ones included)."""

    executions: int
    running: int
    lost: int
    stalled: int


@dataclass(frozen=True)
class Consistency:
    """The results (one per :data:`CONSISTENCY_CHECKS` name) and the run counts (None
    when the executions could not be counted)."""

    results: list[CheckResult]
    counts: RunCounts | None


class _Stopped(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def writer_now(now: datetime, newest_saved: datetime | None,
               last_commit: datetime | None) -> datetime:
    """``now`` (the reader's local time) on the writer's clock.

    The newest stored timestamp was written at about the last commit, whose time the
    database files' modification time gives in absolute terms: their difference is the
    writer's offset (a container in UTC beside a host in another zone, STEPFLOW_STORE.md
    "Time zone"). A housekeeping delete after the last save makes the offset smaller,
    so runs only look younger. Offsets beyond any time zone are not believed.
    """
    if newest_saved is None or last_commit is None:
        return now
    offset = newest_saved - last_commit
    return now if abs(offset) > _MAX_ZONE_OFFSET else now + offset


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None


def _word(value: object) -> str:
    return value.lower() if isinstance(value, str) else ""


class _Run:
    """One pass over a copy; ``live`` confirms findings on the live database."""

    def __init__(self, conn: sqlite3.Connection, root: Path, now: datetime,
                 writer_attached: bool | None, live: OpenLive | None, stop: Stop,
                 last_commit: datetime | None, batch: int) -> None:
        self.conn, self.now, self.writer_attached = conn, now, writer_attached
        self.live, self.stop, self.batch = live, stop, batch
        self.last_commit = last_commit
        self.logs = LogFolders(root / "executions")
        self.counts: RunCounts | None = None
        self._live_conn: sqlite3.Connection | None = None
        self.live_error: str | None = None

    def check_stop(self) -> None:
        s = self.stop()
        if s is not None:
            raise _Stopped(*s)

    def rows(self, sql: str, params: Sequence[object] = ()) -> Iterator[tuple]:
        """Every row of ``sql`` on the copy, in batches (a stop between batches). A
        cursor left open is harmless here: no writer shares the copy."""
        cursor = self.conn.execute(sql, params)
        try:
            while batch := cursor.fetchmany(self.batch):
                self.check_stop()
                yield from batch
        finally:
            cursor.close()

    def confirm(self, sql: str, keys: list) -> list[tuple] | None:
        """Run ``sql`` (with one ``{keys}`` placeholder for an IN-list) on the live
        database for ``keys``, one short query per chunk; None when there is no live
        database to ask or it cannot be read (:attr:`live_error` says why)."""
        if self.live is None or self.live_error is not None:
            return None
        out: list[tuple] = []
        try:
            if self._live_conn is None:
                self._live_conn = self.live()
            for chunk in chunks(keys, _CONFIRM_CHUNK):
                self.check_stop()
                marks = ",".join("?" * len(chunk))
                out += fetch_all(self._live_conn, sql.format(keys=marks), chunk)
        except (sqlite3.Error, OSError, StoreUnavailable) as e:
            self.live_error = f"not confirmed on the live database ({e})"
            return None
        return out

    def close(self) -> None:
        if self._live_conn is not None:
            self._live_conn.close()


def _result(run: _Run, name: str, t0: float, findings: list[Finding],
            notes: Iterable[str] = (), confirmed: bool = True) -> CheckResult:
    notes = list(notes)
    if len(findings) > _MAX_FINDINGS:
        notes.append(f"{len(findings) - _MAX_FINDINGS} more findings not shown")
        findings = findings[:_MAX_FINDINGS]
    if findings and not confirmed and run.live_error:
        notes.append(run.live_error)
    return CheckResult.of(name, findings, time.monotonic() - t0, notes)


# ------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------

_ORPHAN_STEPS = (
    "SELECT s.rowid, s.id, s.execution_id, s.step_index FROM steps s "
    "WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = s.execution_id) AND {where}")
_ORPHAN_ARTIFACTS = (
    "SELECT a.rowid, a.id, a.execution_id, a.step_id, "
    "EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id) FROM artifacts a "
    "WHERE NOT (EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id) AND "
    "(a.step_id IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE s.id = a.step_id))) "
    "AND {where}")


def _orphan_rows(run: _Run) -> CheckResult:
    t0 = time.monotonic()
    found: list[Finding] = []
    confirmed = True
    for sql, alias, say in ((_ORPHAN_STEPS, "s", _say_orphan_step),
                            (_ORPHAN_ARTIFACTS, "a", _say_orphan_art)):
        rows = list(run.rows(sql.format(where="1")))
        if rows:
            live = run.confirm(sql.format(where=f"{alias}.rowid IN ({{keys}})"),
                               [r[0] for r in rows])
            confirmed = confirmed and live is not None
            rows = rows if live is None else live
        found += [Finding(State.CRITICAL, say(r)) for r in rows]
    return _result(run, "orphan_rows", t0, found, confirmed=confirmed)


def _say_orphan_step(r: tuple) -> str:
    _rowid, sid, eid, idx = r
    return f"step {sid} (index {idx}) belongs to execution {eid}, which does not exist"


def _say_orphan_art(r: tuple) -> str:
    _rowid, aid, eid, sid, exec_exists = r
    if not exec_exists:
        return f"artifact {aid} belongs to execution {eid}, which does not exist"
    return f"artifact {aid} names step {sid}, which does not exist"


_TOTALS = (
    "SELECT e.rowid, e.id, e.name, e.status, e.total_steps, e.completed_steps, "
    "count(s.rowid), coalesce(sum(lower(s.status) = 'completed'), 0) "
    "FROM executions e LEFT JOIN steps s ON s.execution_id = e.id "
    f"WHERE lower(e.status) IN ({', '.join(repr(w) for w in _FINAL)}) AND {{where}} "
    "GROUP BY e.rowid")


def _totals_disagree(r: tuple) -> bool:
    _rowid, _id, _name, _status, total, done, n, n_done = r
    return _as_int(total if total is not None else 0) != n or \
        _as_int(done if done is not None else 0) != n_done


def _execution_totals(run: _Run) -> CheckResult:
    t0 = time.monotonic()
    rows = [r for r in run.rows(_TOTALS.format(where="1")) if _totals_disagree(r)]
    live = run.confirm(_TOTALS.format(where="e.rowid IN ({keys})"), [r[0] for r in rows]) \
        if rows else []
    found = [
        Finding(State.CRITICAL,
                f"execution {eid} ({name}) is {status} with total_steps={total}, "
                f"completed_steps={done}, but has {n} step rows of which {n_done} completed")
        for _rowid, eid, name, status, total, done, n, n_done in
        (rows if live is None else [r for r in live if _totals_disagree(r)])
    ]
    return _result(run, "execution_totals", t0, found, confirmed=live is not None)


_IN_FLIGHT_SQL = (
    "SELECT e.rowid, e.id, e.name, e.status, e.created_at, e.started_at, "
    "count(s.rowid), coalesce(sum(lower(s.status) = 'running'), 0), "
    "max(max(coalesce(s.created_at, ''), coalesce(s.started_at, ''), "
    "coalesce(s.completed_at, ''))) "
    "FROM executions e LEFT JOIN steps s ON s.execution_id = e.id "
    f"WHERE coalesce(lower(e.status), '') NOT IN ({', '.join(repr(w) for w in _FINAL)}) "
    "AND {where} GROUP BY e.rowid")


def _newest_saved(run: _Run) -> datetime | None:
    """The newest timestamp the writer stored that is plausible against ``now``."""
    limit = (run.now + _MAX_ZONE_OFFSET).isoformat()
    newest: list[datetime] = []
    for table in ("executions", "steps"):
        for column in ("created_at", "started_at", "completed_at"):
            [(value,)] = list(run.rows(
                f"SELECT max({column}) FROM {table} WHERE {column} <= ?", (limit,)))
            if (moment := parse_timestamp(value)) is not None:
                newest.append(moment)
    return max(newest, default=None)


def _lost_runs(run: _Run, stall_after_s: float, step_stall_after_s: float) -> CheckResult:
    t0 = time.monotonic()
    [(executions,)] = list(run.rows("SELECT count(*) FROM executions"))
    rows = list(run.rows(_IN_FLIGHT_SQL.format(where="1")))
    if rows:
        live = run.confirm(_IN_FLIGHT_SQL.format(where="e.rowid IN ({keys})"),
                           [r[0] for r in rows])
        if live is not None:  # saved since the copy: judge what the live row says now
            rows = live
    judge_ages = rows and run.writer_attached is not False
    writer_clock = writer_now(run.now, _newest_saved(run) if judge_ages else None,
                              run.last_commit)
    found: list[Finding] = []
    notes: list[str] = []
    lost = stalled = in_flight = 0
    for _rowid, eid, name, status, created, started, n, n_running, last_step in rows:
        word = _word(status)
        label = f"execution {eid} ({name})"
        if word not in _IN_FLIGHT:
            notes.append(f"{label} has status {status!r}, which StepFlow does not write: "
                         "not judged")
            continue
        in_flight += 1
        if run.writer_attached is False:
            lost += 1
            found.append(Finding(State.WARNING, (
                f"{label} is stored {word} but no service has the database open: "
                "nothing will finish it (lost run)")))
            continue
        newest = max((m for m in (parse_timestamp(created), parse_timestamp(started),
                                  parse_timestamp(last_step)) if m is not None), default=None)
        log_age = run.logs.newest_age_s(eid, run.now.timestamp())
        row_age = None if newest is None else (writer_clock - newest).total_seconds()
        ages = [a for a in (row_age, log_age) if a is not None]
        if not ages:
            notes.append(f"{label}: its timestamps cannot be read; not judged")
            continue
        age, limit = min(ages), (step_stall_after_s if n_running else stall_after_s)
        if age <= limit:
            continue
        stalled += 1
        what = (f"{n_running} running step(s)" if n_running
                else f"{n} step(s), none running" if n else "no steps")
        why = ("a service has the database open, possibly restarted since"
               if run.writer_attached else "whether a service has the database open is "
               "not known")
        found.append(Finding(State.WARNING, (
            f"{label} is stored {word} with {what} and nothing saved for "
            f"{age / 3600:.1f} h: stalled ({why})")))
    run.counts = RunCounts(executions, in_flight - lost, lost, stalled)
    return _result(run, "lost_runs", t0, found, notes)


_STEPS_BY_ID = "SELECT id, execution_id, step_index FROM steps WHERE id IN ({keys})"


def _log_problem(f: LogFile, row: tuple | None, executions: set[str]) -> str | None:
    if row is None:
        why = "" if f.folder in executions else f"; execution {f.folder} does not exist"
        return f"{f.rel}: no step {f.step_id}{why}"
    if row[1] != f.folder:
        return f"{f.rel}: step {f.step_id} belongs to execution {row[1]}"
    if _as_int(row[2]) != f.index:
        return f"{f.rel}: step {f.step_id} has index {row[2]}, the file name says {f.index}"
    return None


def _log_files(run: _Run) -> CheckResult:
    t0 = time.monotonic()
    listing = run.logs.step_logs(run.check_stop)
    if listing.error is not None:
        return CheckResult.stopped("log_files", "error", listing.error, time.monotonic() - t0)
    found = [Finding(State.WARNING, f"{f.rel}: {f.odd}") for f in listing.files if f.odd]
    files = [f for f in listing.files if not f.odd]
    steps: dict[str, tuple] = {}
    executions: set[str] = set()
    for chunk in chunks(sorted({f.step_id for f in files}), _CONFIRM_CHUNK):
        steps.update((r[0], r) for r in run.rows(
            _STEPS_BY_ID.format(keys=",".join("?" * len(chunk))), chunk))
    for chunk in chunks(sorted({f.folder for f in files}), _CONFIRM_CHUNK):
        executions.update(r[0] for r in run.rows(
            f"SELECT id FROM executions WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    suspects = [f for f in files if _log_problem(f, steps.get(f.step_id), executions)]
    live = run.confirm(_STEPS_BY_ID, sorted({f.step_id for f in suspects})) \
        if suspects else []
    # A step started after the copy was taken has its row in the live database only.
    steps.update((r[0], r) for r in live or ())
    for f in suspects:
        text = _log_problem(f, steps.get(f.step_id), executions)
        if text is not None and run.logs.still_there(f):
            found.append(Finding(State.WARNING, text))
    return _result(run, "log_files", t0, found, confirmed=live is not None)


# ------------------------------------------------------------------------------------


def check_consistency(
    copy: sqlite3.Connection,
    root: Path,
    *,
    now: datetime,
    writer_attached: bool | None,
    live: OpenLive | None = None,
    last_commit: datetime | None = None,
    stall_after_s: float = 3600.0,
    step_stall_after_s: float = 6 * 3600.0,
    batch: int = 5000,
    progress: Callable[[float, str], None] | None = None,
    stop: Stop | None = None,
) -> Consistency:
    """Run the StepFlow consistency checks on ``copy`` (a connection to a private copy
    of the database: its scans are long) for the storage root ``root``.

    ``now``: the reader's local naive time. ``writer_attached``: whether a service has
    the live database open (None: not known). ``live``: opens the live database to
    confirm findings (None: findings stand as read in the copy). ``last_commit``: the
    database files' newest modification time as local naive time (for
    :func:`writer_now`). Thresholds in seconds; ``batch``: rows fetched at a time.
    ``progress(fraction, phrase)``; ``stop()`` as :data:`Stop`.

    Returns one :class:`CheckResult` per :data:`CONSISTENCY_CHECKS` name (a check that
    cannot read what it needs, e.g. another schema, is an ``error`` result; a stop gives
    the remaining checks ``cancelled``/``timeout``) and the run counts. Never raises for
    what it reads.
    """
    say = progress or (lambda f, p: None)
    run = _Run(copy, root, now, writer_attached, live, stop or (lambda: None), last_commit,
               batch)
    done: list[CheckResult] = []
    steps = (
        ("orphan_rows", "rows without an execution", _orphan_rows),
        ("execution_totals", "execution totals", _execution_totals),
        ("lost_runs", "lost and stalled runs",
         lambda r: _lost_runs(r, stall_after_s, step_stall_after_s)),
        ("log_files", "log files", _log_files),
    )
    try:
        tables = {r[0] for r in run.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
        lacking = [t for t in ("executions", "steps", "artifacts") if t not in tables]
        if lacking:
            why = f"not a StepFlow store: no table {', '.join(lacking)}"
            return Consistency([CheckResult.stopped(n, "error", why)
                                for n in CONSISTENCY_CHECKS], None)
        for i, (name, phrase, check) in enumerate(steps):
            say(i / len(steps), phrase)
            run.check_stop()
            t0 = time.monotonic()
            try:
                done.append(check(run))
            except sqlite3.Error as e:
                run.check_stop()  # an interrupt from a cancel lands here
                done.append(CheckResult.stopped(
                    name, "error", f"cannot read the store: {e}", time.monotonic() - t0))
    except sqlite3.Error as e:  # the table list itself could not be read
        status, why = run.stop() or ("error", f"cannot read the store: {e}")
        done = [CheckResult.stopped(n, status, why) for n in CONSISTENCY_CHECKS]
    except _Stopped as s:
        names = {r.name for r in done}
        done += [CheckResult.stopped(n, s.status, str(s))
                 for n in CONSISTENCY_CHECKS if n not in names]
    finally:
        run.close()
    say(1.0, "done")
    return Consistency(done, run.counts)
