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
   the copy with a progress handler (cancellation and deadline), then the caller's own
   checks (a :class:`CopyTask`, e.g. StepFlow's consistency checks), so long reads never
   touch the live database.

Memory: the copy lives in memory when the database is at most ``memory_limit_bytes``
(default 512 MiB), i.e. a check costs about the database size in RAM while it runs;
larger databases are copied to a temporary file in ``tempfile.gettempdir()`` (never
beside the database), deleted afterwards. A temporary file that cannot be made (a full
or read-only ``/tmp``) is an ``error`` result saying so, not an exception.

The live connection is opened with the read-only recipe of SQLITE_WAL.md §4 and never
checkpoints or writes; on a closed WAL store it is opened ``immutable=1`` (the caller
says so) so that no ``-wal``/``-shm`` is created beside the database.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from . import readonly
from .progress import Progress, Reporter
from .results import CheckResult, Finding, IntegrityReport, State
from .sqlite_text import (
    MAX_DETAILS,
    describe,
    fk_line,
    name_pages,
    per_table,
    split_messages,
)

__all__ = [
    "CHECKS",
    "CheckResult",
    "CopyTask",
    "Finding",
    "IntegrityReport",
    "IntegrityRunner",
    "State",
    "run_integrity",
    "connect_readonly",
]

#: Check names understood by :meth:`IntegrityRunner.run`.
CHECKS = ("quick_check", "integrity_check", "foreign_key_check")

#: Asks whether to stop: None to go on, else (status, reason) with status
#: ``cancelled`` or ``timeout``.
StopReason = Callable[[], "tuple[str, str] | None"]

@dataclass(frozen=True)
class CopyTask:
    """More checks to run on the private copy once the integrity checks are done.

    ``names``: the results ``run`` returns, in order (a copy that could not be made
    gives each of them the same ``error``/``cancelled`` result). ``run(copy, progress,
    stop)`` gets the copy's connection (read it freely: no writer shares it), a
    ``progress(fraction, phrase)`` for its own share of the run and ``stop()``
    (:data:`StopReason`); a query interrupted by a cancel raises ``sqlite3.Error``.
    ``bytes_per_s``: its expected speed over the database size, for progress weights.
    """

    names: tuple[str, ...]
    run: Callable[[sqlite3.Connection, Progress, StopReason], list[CheckResult]]
    bytes_per_s: float = 100e6


def connect_readonly(path: str, timeout: float = 1.0, *,
                     immutable: bool = False) -> sqlite3.Connection:
    """Open ``path`` with the one read-only recipe (:mod:`.readonly`; ``immutable`` for
    a closed WAL store only); raises ``sqlite3.Error`` when it cannot be opened."""
    return readonly.connect(path, timeout=timeout, immutable=immutable)


class _Stop(Exception):
    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status


def _results_for(names: Iterable[str], stop: _Stop) -> list[CheckResult]:
    """What a stop before ``names`` ran means for each: corruption found while copying
    is a CRITICAL finding of every check; anything else stopped them."""
    if stop.status == "failed":
        return [CheckResult.of(n, [Finding(State.CRITICAL, str(stop))], 0.0) for n in names]
    return [CheckResult.stopped(n, stop.status, str(stop)) for n in names]


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
    (seconds). ``memory_limit_bytes``: above this the copy goes to a temporary file in
    ``temp_dir`` (default ``tempfile.gettempdir()``). ``max_restarts``: how often a
    stepped copy may restart before giving up. ``busy_timeout_s``: SQLite busy timeout
    of the read-only connection. ``immutable``: open the live database ``immutable=1``
    (only for a closed WAL store: ``readonly.closed_wal_store``).

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
        immutable: bool = False,
    ) -> None:
        self.db_path = os.path.abspath(os.fspath(db_path))
        self.max_snapshot_s = max_snapshot_s
        self.memory_limit_bytes = memory_limit_bytes
        self.max_restarts = max_restarts
        self.busy_timeout_s = busy_timeout_s
        self.temp_dir = temp_dir
        self.immutable = immutable
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
        then: CopyTask | None = None,
    ) -> IntegrityReport:
        """Copy the database and run ``checks`` (names from :data:`CHECKS`, may be
        empty) on the copy, then ``then`` (a :class:`CopyTask`) on the same copy.

        ``progress(fraction, phrase)`` is called from this thread; ``cancel`` (an extra
        event) or :meth:`cancel` stops the run; ``deadline_s`` bounds the whole run in
        seconds (results past it get status ``timeout``). Never raises for database or
        file-system problems: they become results (``failed`` or ``error``). Raises
        ``ValueError`` for an unknown check name.
        """
        for name in checks:
            if name not in CHECKS:
                raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECKS)}")
        self._cancel.clear()
        started, t0 = time.time(), time.monotonic()
        deadline = None if deadline_s is None else t0 + deadline_s
        report = Reporter(progress)

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
        names = list(checks) + list(then.names if then else ())
        try:
            if not os.path.exists(self.db_path):
                raise _Stop("error", f"cannot open {self.db_path}: no such file")
            size = os.stat(self.db_path).st_size  # stat opens nothing (SQLITE_WAL.md §3)
            target = "memory" if size <= self.memory_limit_bytes else "file"
            if target == "file":
                tmp_path = self._temp_file(size)
            report.plan(self._weights(size, target, checks, then))
            copy, snapshot_s = self._copy(target, tmp_path, size, report, stop_reason)
            copy_bytes = size
            for name in checks:
                results.append(self._check(copy, name, size, report, stop_reason))
            if then is not None:
                results += self._then(copy, then, report, stop_reason)
        except _Stop as s:
            done = {r.name for r in results}
            results += _results_for([n for n in names if n not in done], s)
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
    def _temp_file(self, size: int) -> str:
        """A new empty file for a copy of ``size`` bytes; raises :class:`_Stop` (error)
        with one line saying where and what to do when it cannot be made."""
        where = self.temp_dir or tempfile.gettempdir()
        try:
            fd, path = tempfile.mkstemp(prefix="stepflow-top-check-", suffix=".db",
                                        dir=self.temp_dir)
        except OSError as e:
            raise _Stop("error", (
                f"cannot make a temporary copy of the {size / 1e6:.0f} MB database in "
                f"{where}: {e.strerror or e}; free space there or set TMPDIR")) from e
        os.close(fd)
        return path

    @staticmethod
    def _weights(size: int, target: str, checks: Iterable[str],
                 then: CopyTask | None) -> dict[str, float]:
        with _RATES_LOCK:
            rates = dict(_RATES)
        w = {"copy": size / rates[f"copy_{target}"] + 0.01}
        for n in checks:
            w[n] = size / rates[n] + 0.01
        if then is not None:
            w["then"] = size / then.bytes_per_s + 0.01
        return w

    def _then(
        self, copy: sqlite3.Connection, task: CopyTask, report: Reporter,
        stop_reason: Callable[[], _Stop | None],
    ) -> list[CheckResult]:
        """Run the caller's checks on the copy, with the same progress handler as the
        integrity checks so that a cancel interrupts a long query."""

        def stop() -> tuple[str, str] | None:
            s = stop_reason()
            return None if s is None else (s.status, str(s))

        copy.set_progress_handler(lambda: 1 if stop_reason() is not None else 0, 20000)
        try:
            return task.run(copy, lambda f, p: report.phase("then", f, p), stop)
        finally:
            copy.set_progress_handler(None, 0)

    def _copy(
        self, target: str, tmp_path: str | None, size: int, report: Reporter,
        stop_reason: Callable[[], _Stop | None],
    ) -> tuple[sqlite3.Connection, float]:
        """Back up the live database into the copy. Returns (copy, longest snapshot s)."""
        try:
            src = self._track(connect_readonly(self.db_path, self.busy_timeout_s,
                                               immutable=self.immutable))
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
                status, msg = describe(e)
                raise _Stop(status, f"cannot read {self.db_path}: {msg}") from e
            try:
                dest = sqlite3.connect(":memory:" if target == "memory" else tmp_path,
                                       isolation_level=None, check_same_thread=False)
            except sqlite3.Error as e:
                raise _Stop("error", f"cannot open the private copy {tmp_path}: {e}") from e
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
                status, msg = describe(e)
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
        self, conn: sqlite3.Connection, name: str, size: int, report: Reporter,
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
                rows = conn.execute("PRAGMA foreign_key_check").fetchmany(MAX_DETAILS + 1)
                details = [fk_line(r) for r in rows[:MAX_DETAILS]]
                if len(rows) > MAX_DETAILS:
                    details.append(f"(more than {MAX_DETAILS} rows; first {MAX_DETAILS} shown)")
            else:
                rows = []
                cur = conn.execute(f"PRAGMA {name}({MAX_DETAILS})")
                try:
                    while (row := cur.fetchone()) is not None:
                        rows.append(row)
                except sqlite3.DatabaseError as e:
                    # SQLite may abort the whole check on a damaged page (SQLITE_CORRUPT)
                    # instead of reporting it: check table by table to name the damage.
                    if stopped or describe(e)[0] != "failed":
                        raise
                    rows += [(f"{describe(e)[1]} (while checking the whole database)",)]
                    rows += per_table(conn, name)
                details = split_messages(rows)
                if details:
                    details = name_pages(conn, details)
        except sqlite3.Error as e:
            dur = time.monotonic() - t0
            stop = stopped[0] if stopped else stop_reason()
            if stop is not None:
                return CheckResult.stopped(name, stop.status, str(stop), dur)
            status, msg = describe(e)
            if status == "failed":
                return CheckResult.of(name, [Finding(State.CRITICAL, msg)], dur)
            return CheckResult.stopped(name, status, msg, dur)
        finally:
            conn.set_progress_handler(None, 0)
        dur = time.monotonic() - t0
        _learn(name, size, dur)
        report.phase(name, 1.0, f"{name.replace('_', ' ')}: done")
        return CheckResult.of(name, [Finding(State.CRITICAL, d) for d in details], dur)


def run_integrity(
    db_path: str | os.PathLike[str],
    checks: Sequence[str] = ("quick_check",),
    **kwargs: Any,
) -> IntegrityReport:
    """One-shot helper: ``IntegrityRunner(db_path).run(checks, ...)``. Keyword arguments
    go to the runner (``max_snapshot_s``, ``memory_limit_bytes``, ...) or to
    :meth:`IntegrityRunner.run` (``progress``, ``cancel``, ``deadline_s``, ``then``)."""
    run_keys = {"progress", "cancel", "deadline_s", "then"}
    run_kw = {k: v for k, v in kwargs.items() if k in run_keys}
    init_kw = {k: v for k, v in kwargs.items() if k not in run_keys}
    return IntegrityRunner(db_path, **init_kw).run(checks, **run_kw)
