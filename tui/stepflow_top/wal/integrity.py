"""Integrity checks that never hold one snapshot of the live database for long.

Design (measured with ``tests/benchmarks/bench_integrity_starvation.py``): a reader's
snapshot stops checkpoints at its read mark, so ``PRAGMA integrity_check`` on the live
database lets the WAL grow for the whole check (4-5 s on a 156-222 MB database,
SQLITE_WAL.md §5-6). Instead:

1. **Copy**: ``sqlite3.Connection.backup()`` from a read-only connection into a private
   copy. A backup copies raw pages (it does not parse b-trees), so corruption is copied
   as it is and page numbers stay the same. When the estimated copy time (database bytes
   / measured throughput) fits in ``max_snapshot_s``, the copy is **one step**: one
   snapshot, held for the copy only (0.2-0.35 s for 222 MB into memory on an idle
   2-core machine; 0.3-0.8 s, outliers to 1.4 s, for 156 MB beside a busy writer).
   Otherwise it is done in steps of about ``max_snapshot_s / 2`` each: every step is its
   own snapshot, but SQLite restarts a stepped backup whenever another connection commits
   (``sqlite3_backup_step`` docs; measured: 21 restarts in 0.75 s with steps of 5000
   pages and a commit every 10 ms), so under a busy writer it may not converge; after
   ``max_restarts`` the run stops with an ``error`` result instead of holding a longer
   snapshot.
2. **Check the copy**: ``quick_check``, ``integrity_check``, ``foreign_key_check`` run on
   the copy with a progress handler (cancellation and deadline); the live database is
   not touched any more.

Memory: the copy lives in memory when the database is at most ``memory_limit_bytes``
(default 512 MiB), i.e. a check costs about the database size in RAM while it runs;
larger databases are copied to a temporary file in ``tempfile.gettempdir()`` (never
beside the database), deleted afterwards.

The live connection is opened with the read-only recipe of SQLITE_WAL.md §4 and never
checkpoints or writes.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence
from . import readonly

__all__ = [
    "CHECKS",
    "CheckResult",
    "IntegrityReport",
    "IntegrityRunner",
    "run_integrity",
    "connect_readonly",
]

#: Check names understood by :meth:`IntegrityRunner.run`.
CHECKS = ("quick_check", "integrity_check", "foreign_key_check")

#: Progress callback: (fraction 0..1, phrase).
Progress = Callable[[float, str], None]

_MAX_DETAILS = 100


@dataclass(frozen=True)
class CheckResult:
    """The result of one check.

    ``ok``: True only when the check ran and found nothing. ``details``: one line per
    problem (naming table, page, row) or the reason it could not run. ``duration_s``:
    seconds. ``status``: ``ok``, ``failed`` (a problem was found), ``error`` (the check
    could not run, e.g. the database cannot be opened), ``cancelled`` or ``timeout``.
    """

    name: str
    ok: bool
    details: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    status: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "ok", "details", "duration_s", "status"}``."""
        return {"name": self.name, "ok": self.ok, "details": list(self.details),
                "duration_s": round(self.duration_s, 6), "status": self.status}


@dataclass(frozen=True)
class IntegrityReport:
    """All results of one run. ``snapshot_s``: the longest time one snapshot of the live
    database was held (seconds); ``copy_bytes``: size of the private copy;
    ``copy_target``: ``memory`` or ``file``; ``started``: epoch seconds."""

    results: list[CheckResult]
    started: float
    duration_s: float
    snapshot_s: float = 0.0
    copy_bytes: int = 0
    copy_target: str = ""

    @property
    def ok(self) -> bool:
        """True when every check ran and passed."""
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "checks": [...], "duration_s", "snapshot_s", ...}``."""
        return {"ok": self.ok, "checks": [r.to_dict() for r in self.results],
                "started": self.started, "duration_s": round(self.duration_s, 6),
                "snapshot_s": round(self.snapshot_s, 6), "copy_bytes": self.copy_bytes,
                "copy_target": self.copy_target}


def connect_readonly(path: str, timeout: float = 1.0) -> sqlite3.Connection:
    """Open ``path`` with the one read-only recipe (:mod:`.readonly`); raises
    ``sqlite3.Error`` when it cannot be opened."""
    return readonly.connect(path, timeout=timeout)


class _Stop(Exception):
    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status


def _describe(e: BaseException) -> tuple[str, str]:
    """(status, message) for a SQLite error: corruption is a finding, the rest an error."""
    name = getattr(e, "sqlite_errorname", "") or ""
    msg = str(e)
    if name.startswith("SQLITE_CORRUPT") or "malformed" in msg:
        return "failed", f"database disk image is malformed: {msg}"
    if name == "SQLITE_NOTADB" or "not a database" in msg:
        return "error", f"not a SQLite database (or encrypted): {msg}"
    if name.startswith("SQLITE_BUSY") or "locked" in msg:
        return "error", f"database is busy: {msg}"
    return "error", msg


# Throughputs in bytes/second, updated from measured runs (shared by all runners).
_RATES = {"copy_memory": 300e6, "copy_file": 150e6, "quick_check": 500e6,
          "integrity_check": 40e6, "foreign_key_check": 200e6}
_RATES_LOCK = threading.Lock()


def _learn(key: str, nbytes: int, seconds: float) -> None:
    if nbytes < (8 << 20) or seconds <= 0:
        return  # too small to measure anything but overhead
    with _RATES_LOCK:
        _RATES[key] = 0.5 * _RATES[key] + 0.5 * (nbytes / seconds)


class IntegrityRunner:
    """Runs integrity checks on a private copy of ``db_path``.

    ``max_snapshot_s``: the longest one snapshot of the live database may be held
    (seconds). ``memory_limit_bytes``: above this the copy goes to a temporary file.
    ``max_restarts``: how often a stepped copy may restart before giving up.
    ``busy_timeout_s``: SQLite busy timeout of the read-only connection.

    :meth:`run` is meant to run in a worker thread; :meth:`cancel` may be called from
    any thread. One run at a time per runner.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        max_snapshot_s: float = 1.0,
        memory_limit_bytes: int = 512 << 20,
        max_restarts: int = 5,
        busy_timeout_s: float = 1.0,
        temp_dir: str | None = None,
    ) -> None:
        self.db_path = os.path.abspath(os.fspath(db_path))
        self.max_snapshot_s = max_snapshot_s
        self.memory_limit_bytes = memory_limit_bytes
        self.max_restarts = max_restarts
        self.busy_timeout_s = busy_timeout_s
        self.temp_dir = temp_dir
        self._cancel = threading.Event()
        self._active: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop the current run as soon as possible (results get status
        ``cancelled``). Safe from any thread."""
        self._cancel.set()
        with self._lock:
            for c in self._active:
                try:
                    c.interrupt()
                except sqlite3.Error:
                    pass

    def _track(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        with self._lock:
            self._active.append(conn)
        return conn

    def _untrack(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._active:
                self._active.remove(conn)
        conn.close()

    # ----------------------------------------------------------------------------------
    def run(
        self,
        checks: Sequence[str] = ("quick_check",),
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        deadline_s: float | None = None,
    ) -> IntegrityReport:
        """Copy the database and run ``checks`` (names from :data:`CHECKS`) on the copy.

        ``progress(fraction, phrase)`` is called from this thread; ``cancel`` (an extra
        event) or :meth:`cancel` stops the run; ``deadline_s`` bounds the whole run in
        seconds (results past it get status ``timeout``). Never raises for database
        problems: they become results (status ``failed`` or ``error``). Raises
        ``ValueError`` for an unknown check name.
        """
        for name in checks:
            if name not in CHECKS:
                raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECKS)}")
        self._cancel.clear()
        started, t0 = time.time(), time.monotonic()
        deadline = None if deadline_s is None else t0 + deadline_s
        report = _Reporter(progress)

        def stop_reason() -> _Stop | None:
            if self._cancel.is_set() or (cancel is not None and cancel.is_set()):
                return _Stop("cancelled", "cancelled")
            if deadline is not None and time.monotonic() > deadline:
                return _Stop("timeout", f"stopped at the {deadline_s:g} s deadline")
            return None

        copy: sqlite3.Connection | None = None
        tmp_path: str | None = None
        snapshot_s, copy_bytes, target = 0.0, 0, ""
        results: list[CheckResult] = []
        try:
            if not os.path.exists(self.db_path):
                raise _Stop("error", f"cannot open {self.db_path}: no such file")
            size = os.stat(self.db_path).st_size  # stat opens nothing (SQLITE_WAL.md §3)
            target = "memory" if size <= self.memory_limit_bytes else "file"
            if target == "file":
                fd, tmp_path = tempfile.mkstemp(prefix="stepflow-top-check-", suffix=".db",
                                                dir=self.temp_dir)
                os.close(fd)
            weights = self._weights(size, target, checks)
            report.plan(weights)
            copy, snapshot_s = self._copy(target, tmp_path, size, report, stop_reason)
            copy_bytes = size
            for name in checks:
                results.append(self._check(copy, name, size, report, stop_reason))
        except _Stop as s:
            done = {r.name for r in results}
            results += [CheckResult(n, False, [str(s)], 0.0, s.status)
                        for n in checks if n not in done]
        finally:
            if copy is not None:
                self._untrack(copy)
            if tmp_path is not None:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    try:
                        os.unlink(tmp_path + suffix)
                    except OSError:
                        pass
        report.fraction(1.0, "done")
        return IntegrityReport(results, started, time.monotonic() - t0, snapshot_s,
                               copy_bytes, target)

    # ----------------------------------------------------------------------------------
    @staticmethod
    def _weights(size: int, target: str, checks: Iterable[str]) -> dict[str, float]:
        with _RATES_LOCK:
            rates = dict(_RATES)
        w = {"copy": size / rates[f"copy_{target}"] + 0.01}
        for n in checks:
            w[n] = size / rates[n] + 0.01
        return w

    def _copy(
        self, target: str, tmp_path: str | None, size: int, report: "_Reporter",
        stop_reason: Callable[[], _Stop | None],
    ) -> tuple[sqlite3.Connection, float]:
        """Back up the live database into the copy. Returns (copy, longest snapshot s)."""
        try:
            src = self._track(connect_readonly(self.db_path, self.busy_timeout_s))
        except sqlite3.Error as e:
            raise _Stop("error", f"cannot open {self.db_path}: {e}") from e
        try:
            try:
                # Read the source through mmap (no new file descriptor, so no lock loss):
                # the copy, and so the snapshot, is about 25% shorter (0.26 -> 0.19 s for
                # 222 MB measured here; sqlite.org mmap.html).
                src.execute(f"PRAGMA mmap_size={min(size, 1 << 30)}").fetchall()
                page_size = src.execute("PRAGMA page_size").fetchall()[0][0]
            except sqlite3.Error as e:
                status, msg = _describe(e)
                raise _Stop(status, f"cannot read {self.db_path}: {msg}") from e
            dest = sqlite3.connect(":memory:" if target == "memory" else tmp_path,
                                   isolation_level=None, check_same_thread=False)
            self._track(dest)
            try:
                if target == "file":
                    dest.execute("PRAGMA journal_mode=OFF")
                    dest.execute("PRAGMA synchronous=OFF")
                dest.execute(f"PRAGMA page_size={int(page_size)}")
            except sqlite3.Error:
                pass
            rate = _RATES[f"copy_{target}"]
            one_step = size / rate <= self.max_snapshot_s
            pages = -1 if one_step else max(64, int(rate * self.max_snapshot_s / 2 / page_size))
            state = {"t": time.monotonic(), "longest": 0.0, "last": None, "restarts": 0}

            def on_step(status: int, remaining: int, total: int) -> None:
                now = time.monotonic()
                state["longest"] = max(state["longest"], now - state["t"])
                if state["last"] is not None and remaining > state["last"]:
                    state["restarts"] += 1
                state["last"] = remaining
                if total:
                    report.phase("copy", 1 - remaining / total, "copying the database")
                stop = stop_reason()
                if stop is not None:
                    raise stop
                if state["restarts"] > self.max_restarts:
                    raise _Stop("error", (
                        f"the writer changed the database {state['restarts']} times during "
                        f"a stepped copy of {size / 1e6:.0f} MB; not holding a snapshot "
                        f"longer than {self.max_snapshot_s:g} s (raise max_snapshot_s)"))
                state["t"] = time.monotonic()

            report.phase("copy", 0.0, "copying the database")
            t0 = time.monotonic()
            state["t"] = t0
            try:
                src.backup(dest, pages=pages, progress=on_step, sleep=0.05)
            except _Stop:
                self._untrack(dest)  # the copy (up to memory_limit_bytes) goes now
                raise
            except sqlite3.Error as e:
                self._untrack(dest)
                stop = stop_reason()  # an interrupt() from cancel() lands here too
                if stop is not None:
                    raise stop from e
                status, msg = _describe(e)
                raise _Stop(status, f"copying the database: {msg}") from e
            elapsed = time.monotonic() - t0
            if one_step:
                state["longest"] = max(state["longest"], elapsed)
            _learn(f"copy_{target}", size, elapsed)
            report.phase("copy", 1.0, "copied")
            return dest, float(state["longest"])
        finally:
            self._untrack(src)

    def _check(
        self, conn: sqlite3.Connection, name: str, size: int, report: "_Reporter",
        stop_reason: Callable[[], _Stop | None],
    ) -> CheckResult:
        t0 = time.monotonic()
        with _RATES_LOCK:
            expected = size / _RATES[name] + 0.01
        stopped: list[_Stop] = []

        def handler() -> int:
            report.phase(name, min(0.99, (time.monotonic() - t0) / expected),
                         f"{name.replace('_', ' ')}: checking pages")
            s = stop_reason()
            if s is not None:
                stopped.append(s)
                return 1
            return 0

        conn.set_progress_handler(handler, 20000)
        report.phase(name, 0.0, f"{name.replace('_', ' ')}: starting")
        try:
            if name == "foreign_key_check":
                rows = conn.execute("PRAGMA foreign_key_check").fetchmany(_MAX_DETAILS + 1)
                details = [_fk_line(r) for r in rows[:_MAX_DETAILS]]
                if len(rows) > _MAX_DETAILS:
                    details.append(f"(more than {_MAX_DETAILS} rows; first {_MAX_DETAILS} shown)")
            else:
                rows = []
                cur = conn.execute(f"PRAGMA {name}({_MAX_DETAILS})")
                try:
                    while (row := cur.fetchone()) is not None:
                        rows.append(row)
                except sqlite3.DatabaseError as e:
                    # SQLite may abort the whole check on a damaged page (SQLITE_CORRUPT)
                    # instead of reporting it: check table by table to name the damage.
                    if stopped or _describe(e)[0] != "failed":
                        raise
                    rows += [(f"{_describe(e)[1]} (while checking the whole database)",)]
                    rows += _per_table(conn, name)
                details = _split_messages(rows)
                if details:
                    details = _name_pages(conn, details)
        except sqlite3.Error as e:
            dur = time.monotonic() - t0
            stop = stopped[0] if stopped else stop_reason()
            if stop is not None:
                return CheckResult(name, False, [str(stop)], dur, stop.status)
            status, msg = _describe(e)
            return CheckResult(name, False, [msg], dur, status)
        finally:
            conn.set_progress_handler(None, 0)
        dur = time.monotonic() - t0
        _learn(name, size, dur)
        report.phase(name, 1.0, f"{name.replace('_', ' ')}: done")
        return CheckResult(name, not details, details, dur, "ok" if not details else "failed")


def _per_table(conn: sqlite3.Connection, check: str) -> list[tuple[str]]:
    """``PRAGMA <check>(<table>)`` for each table (pragma.html: the argument limits the
    check to that table and its indexes), prefixing each message with the table name."""
    out: list[tuple[str]] = []
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()]
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        try:
            rows = conn.execute(f"PRAGMA {check}({quoted})").fetchall()
            out += [(f"table {table}: {line}",) for line in _split_messages(rows)]
        except sqlite3.DatabaseError as e:
            status, msg = _describe(e)
            if status != "failed":
                raise
            out.append((f"table {table}: {msg}",))
    return out


def _split_messages(rows: Iterable[Sequence[Any]]) -> list[str]:
    """One line per problem: a row may hold several lines, and a ``*** in database
    main ***`` heading (SQLite's integrity_check output, pragma.html)."""
    out: list[str] = []
    for r in rows:
        for line in str(r[0]).splitlines():
            line = line.strip()
            if line and line != "ok" and not line.startswith("*** in database"):
                out.append(line)
    if len(out) > _MAX_DETAILS:
        out = out[:_MAX_DETAILS] + [f"(more than {_MAX_DETAILS} problems; first shown)"]
    return out


_PAGE_RE = re.compile(r"\bpage (\d+)", re.IGNORECASE)


def _name_pages(conn: sqlite3.Connection, lines: list[str]) -> list[str]:
    """Append the table or index owning each page a message names, found with the
    ``dbstat`` virtual table on the copy (sqlite.org dbstat.html) when it is available;
    lines are returned unchanged when it is not or cannot read the damaged b-trees."""
    pages = {int(m) for line in lines for m in _PAGE_RE.findall(line)}
    if not pages:
        return lines
    owner: dict[int, str] = {}
    try:
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master").fetchall())
        for name, pageno in conn.execute("SELECT name, pageno FROM dbstat"):
            if pageno in pages and pageno not in owner:
                owner[pageno] = f"{kinds.get(name, 'b-tree')} {name}"
    except sqlite3.Error:
        pass  # no dbstat, or too damaged to walk: keep SQLite's own words
    out = []
    for line in lines:
        named = sorted({owner[int(m)] for m in _PAGE_RE.findall(line) if int(m) in owner})
        out.append(f"{line} ({', '.join(named)})" if named else line)
    return out


def _fk_line(row: Sequence[Any]) -> str:
    table, rowid, parent, fkid = (list(row) + [None] * 4)[:4]
    where = f"rowid {rowid}" if rowid is not None else "a row without rowid"
    return (f"{table} {where}: no matching row in {parent} "
            f"(foreign key #{fkid} of {table})")


class _Reporter:
    """Maps per-phase fractions onto one overall fraction weighted by expected time."""

    def __init__(self, cb: Progress | None) -> None:
        self.cb = cb
        self.weights: dict[str, float] = {}
        self.order: list[str] = []
        self.last = 0.0

    def plan(self, weights: dict[str, float]) -> None:
        self.weights, self.order = weights, list(weights)

    def phase(self, name: str, f: float, phrase: str) -> None:
        if not self.weights or name not in self.weights:
            return
        total = sum(self.weights.values())
        before = sum(self.weights[n] for n in self.order[: self.order.index(name)])
        self.fraction((before + self.weights[name] * max(0.0, min(1.0, f))) / total, phrase)

    def fraction(self, f: float, phrase: str) -> None:
        f = max(self.last, min(1.0, f))  # never goes backwards
        self.last = f
        if self.cb is not None:
            try:
                self.cb(f, phrase)
            except Exception:
                pass  # a broken callback must not break the check


def run_integrity(
    db_path: str | os.PathLike[str],
    checks: Sequence[str] = ("quick_check",),
    **kwargs: Any,
) -> IntegrityReport:
    """One-shot helper: ``IntegrityRunner(db_path).run(checks, ...)``. Keyword arguments
    go to the runner (``max_snapshot_s``, ``memory_limit_bytes``, ...) or to
    :meth:`IntegrityRunner.run` (``progress``, ``cancel``, ``deadline_s``)."""
    run_keys = {"progress", "cancel", "deadline_s"}
    run_kw = {k: v for k, v in kwargs.items() if k in run_keys}
    init_kw = {k: v for k, v in kwargs.items() if k not in run_keys}
    return IntegrityRunner(db_path, **init_kw).run(checks, **run_kw)
