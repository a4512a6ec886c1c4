"""The one place that decides which checks run, and runs them: ``--check``, the TUI's
health screen and ``--events`` all call :func:`run_checks`.

One run = one private copy of the database (``wal.integrity.IntegrityRunner``: the live
database's snapshot is held for the copy only), the integrity checks on it, then the
StepFlow consistency checks on the same copy (``store.consistency``), whose findings are
confirmed on the live database with short by-rowid queries. So a whole ``--check`` reads
the live database for well under a second per run, and the WAL stays within about twice
its size with the writer alone (DESIGN.md promise 2; figures from
``tests/benchmarks/bench_integrity_starvation.py``).

The WAL part (not in WAL mode, a WAL growing with no checkpoint, starved checkpoints)
is ``wal.history.Warnings`` over the probe samples a :class:`WalWatch` takes at the
start, every second during the run and at the end: nothing is re-derived here. Those
rules need time (30 s for starved checkpoints, 300 s for no checkpoint), so a short run
can only report "not in WAL mode"; the TUI and ``--events`` watch continuously.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterator

from ..store.connection import StoreUnavailable, connect_readonly
from ..store.consistency import CONSISTENCY_CHECKS, RunCounts, check_consistency
from ..store.locate import StorePaths
from ..wal import readonly
from ..wal.history import WalWarning, Warnings
from ..wal.integrity import (
    CheckResult,
    CopyTask,
    Finding,
    IntegrityReport,
    IntegrityRunner,
    State,
)
from ..wal.probe import Probe, ProbeError, WalSample
from ..wal.progress import Progress

__all__ = ["KINDS", "CheckReport", "Perf", "WalWatch", "checks_of", "run_checks", "summary"]

#: What a kind of run checks: integrity checks on the copy, and whether the StepFlow
#: consistency checks follow. "all" is what ``--check`` runs.
KINDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "quick": (("quick_check", "foreign_key_check"), False),
    "full": (("integrity_check", "foreign_key_check"), False),
    "consistency": ((), True),
    "all": (("quick_check", "foreign_key_check"), True),
    "all-full": (("integrity_check", "foreign_key_check"), True),
}


def checks_of(kind: str) -> tuple[str, ...]:
    """The names of the results a ``kind`` gives, in order (``wal`` comes last when a
    :class:`WalWatch` is passed). Raises ``ValueError`` for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of check {kind!r}; known: {', '.join(KINDS)}")
    integrity, consistency = KINDS[kind]
    return integrity + (CONSISTENCY_CHECKS if consistency else ())


@dataclass(frozen=True)
class Perf:
    """One performance-data figure (Monitoring Plugins guidelines §2.6:
    ``'label'=value[UOM];[warn];[crit];[min];[max]``). ``value`` None prints ``U``
    (the value could not be determined). A label holding a space or a quote is quoted
    (a quote doubled), and ``=``, which no label may hold, becomes ``_`` (same
    section)."""

    label: str
    value: int | None
    uom: str = ""
    warn: str = ""
    min: int | None = 0

    def __str__(self) -> str:
        label = self.label.replace("=", "_")
        if " " in label or "'" in label:
            label = "'" + label.replace("'", "''") + "'"
        value = "U" if self.value is None else f"{self.value}{self.uom}"
        low = "" if self.min is None else str(self.min)
        return f"{label}={value};{self.warn};;{low}"

    def of_store(self, store: str) -> "Perf":
        """This figure labelled ``store:label``, for a report over several stores."""
        return replace(self, label=f"{store}:{self.label}")


@dataclass(frozen=True)
class CheckReport(IntegrityReport):
    """An :class:`IntegrityReport` with what the rest of the run learnt: ``counts`` of
    executions (None when the consistency checks did not run or could not count),
    ``wal`` (the last probe sample, None without one), ``writer_attached`` (as given)
    and ``error`` (one line: the store could not be opened at all; then there are no
    results)."""

    counts: RunCounts | None = None
    wal: WalSample | None = None
    writer_attached: bool | None = None
    error: str | None = None

    @property
    def state(self) -> State:
        """UNKNOWN when the store could not be opened, else the worst result's state."""
        return State.UNKNOWN if self.error else super().state

    @property
    def perfdata(self) -> list[Perf]:
        """Executions, running and lost runs, the ``-wal`` file size and its live part,
        and the database file size (bytes)."""
        c, w = self.counts, self.wal
        return [
            Perf("executions", c.executions if c else None),
            Perf("running", c.running if c else None),
            Perf("lost", c.lost if c else None, warn="0"),
            Perf("wal_bytes", (w.wal_size or 0) if w else None, "B"),
            Perf("wal_live_bytes", w.live_wal_bytes if w else None, "B"),
            Perf("db_bytes", w.db_size if w else None, "B"),
        ]

    def to_dict(self) -> dict:
        """:meth:`IntegrityReport.to_dict` plus ``counts``, ``perfdata`` (label: value),
        ``writer_attached`` and ``error``."""
        c = self.counts
        return {**super().to_dict(), "error": self.error,
                "writer_attached": self.writer_attached,
                "counts": None if c is None else {"executions": c.executions,
                                                  "running": c.running, "lost": c.lost,
                                                  "stalled": c.stalled},
                "perfdata": {p.label: p.value for p in self.perfdata}}


@dataclass
class WalWatch:
    """Probe samples of one database fed through the WAL warning rules
    (``wal.history.Warnings``); the ``wal`` result holds every warning raised by any
    sample. ``journal_mode``: what ``PRAGMA journal_mode`` said, when known."""

    database: os.PathLike[str] | str
    journal_mode: str | None = None
    probe: Probe = field(default_factory=Probe)
    rules: Warnings = field(default_factory=lambda: Warnings(own_pid=os.getpid()))
    samples: list[WalSample] = field(default_factory=list)
    raised: dict[str, WalWarning] = field(default_factory=dict)
    error: str | None = None

    def sample(self) -> WalSample | None:
        """Take one sample (None, and :attr:`error` says why, when the probe fails)."""
        try:
            s = self.probe.sample(self.database)
        except ProbeError as e:
            self.error = f"cannot read the WAL state: {e}"
            return None
        self.samples.append(s)
        for w in self.rules.update(s, self.journal_mode):
            self.raised[w.code] = w
        return s

    @contextmanager
    def sampling(self, every_s: float = 1.0) -> Iterator[None]:
        """Sample every ``every_s`` seconds in a thread while the block runs, so that a
        long run can see the time-based rules fire (starved checkpoints: 30 s)."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(every_s):
                self.sample()

        thread = threading.Thread(target=loop, name="wal-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    @property
    def last(self) -> WalSample | None:
        return self.samples[-1] if self.samples else None

    @property
    def writer_attached(self) -> bool | None:
        """Whether a service has the database open, from the first sample (None: not
        known, or no sample)."""
        return self.samples[0].writer_attached if self.samples else None

    def result(self, duration_s: float) -> CheckResult:
        """The ``wal`` check: each raised warning is a WARNING finding; no sample at all
        is an ``error`` (UNKNOWN)."""
        if not self.samples:
            return CheckResult.stopped("wal", "error", self.error or "no probe sample",
                                       duration_s)
        return CheckResult.of("wal", [Finding(State.WARNING, w.message)
                                      for w in self.raised.values()], duration_s)

    def close(self) -> None:
        self.probe.close()


def _last_commit(paths: StorePaths) -> datetime | None:
    """The newest modification time of the database and its ``-wal`` (``os.stat``
    opens nothing: SQLITE_WAL.md §3), as local naive time."""
    times = []
    for p in (paths.database, paths.wal):
        try:
            times.append(os.stat(p).st_mtime)
        except OSError:
            continue
    try:
        return datetime.fromtimestamp(max(times)) if times else None
    except (OverflowError, OSError, ValueError):  # a time beyond year 9999
        return None


def run_checks(
    paths: StorePaths,
    kind: str,
    *,
    now: datetime,
    writer_attached: bool | None,
    wal: WalWatch | None = None,
    sample: WalSample | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    deadline_s: float | None = None,
    **thresholds: float,
) -> CheckReport:
    """Run the checks of ``kind`` (a key of :data:`KINDS`) on ``paths``.

    ``now``: the reader's local naive time. ``writer_attached``: whether a service has
    the database open (``WalSample.writer_attached``; None: not known, so no run is
    called lost). ``wal``: a :class:`WalWatch` sampled at the start (unless it holds a
    sample already), every second during the run and at the end; it adds the ``wal``
    result and the report's WAL figures. Without one, ``sample`` (the caller's latest
    probe sample, e.g. the TUI's health sample) tells whether the store is closed, so
    that it is read ``immutable=1`` and no ``-wal``/``-shm`` is created.

    ``progress(fraction, phrase)`` is called from this thread and must not block.
    ``cancel`` stops the run (results ``cancelled``, report state CANCELLED: never a
    problem) and ``deadline_s`` bounds it in seconds (``timeout``: UNKNOWN); both are
    looked at between backup steps and every 20000 SQLite instructions.
    ``thresholds``: ``stall_after_s`` / ``step_stall_after_s`` (seconds) for
    :func:`store.consistency.check_consistency`.

    Never raises for what it reads; raises ``ValueError`` for an unknown kind.
    """
    checks_of(kind)  # raises ValueError for an unknown kind
    integrity, consistency = KINDS[kind]
    t0 = time.monotonic()
    if wal is not None and not wal.samples:
        wal.sample()
    first = wal.samples[0] if wal is not None and wal.samples else sample
    closed = readonly.closed_wal_store(paths.database, first.wal_mode if first else None)
    try:
        connect_readonly(paths.database, immutable=closed).close()
    except StoreUnavailable as e:
        return CheckReport([], time.time(), time.monotonic() - t0, wal=first,
                           writer_attached=writer_attached, error=str(e))

    counts: list[RunCounts | None] = [None]

    def consistency_on(copy, part: Progress, stop) -> list[CheckResult]:
        done = check_consistency(
            copy, paths.root, now=now, writer_attached=writer_attached,
            live=lambda: connect_readonly(paths.database, immutable=closed),
            last_commit=_last_commit(paths), progress=part, stop=stop, **thresholds)
        counts[0] = done.counts
        return done.results

    task = CopyTask(CONSISTENCY_CHECKS, consistency_on) if consistency else None
    runner = IntegrityRunner(paths.database, immutable=closed)
    with wal.sampling() if wal is not None else nullcontext():
        report = runner.run(integrity, progress=progress, cancel=cancel,
                            deadline_s=deadline_s, then=task)
    results = list(report.results)
    if wal is not None:
        t1 = time.monotonic()
        wal.sample()
        results.append(wal.result(time.monotonic() - t1))
    return CheckReport(results, report.started, time.monotonic() - t0, report.snapshot_s,
                       report.copy_bytes, report.copy_target, counts=counts[0],
                       wal=wal.last if wal is not None else sample,
                       writer_attached=writer_attached)


def summary(report: CheckReport) -> str:
    """The first line's text after the state: why it is not OK, then the figures
    (``lost_runs (2); 1204 executions, 2 running, WAL 3.9 MiB``). Store text in it is
    raw: show it literally."""
    if report.error:
        return report.error
    parts: list[str] = []
    stopped = [r for r in report.results if r.severity is State.CANCELLED]
    for r in report.results:
        if r.severity in (State.WARNING, State.CRITICAL):
            parts.append(f"{r.name} ({len(r.findings)})")
        elif r.severity is State.UNKNOWN:
            parts.append(f"{r.name} could not run: {r.reason}")
    if stopped and not parts:
        parts.append("cancelled")
    figures = _figures(report.counts, report.wal)
    return "; ".join(p for p in (", ".join(parts), figures) if p) or "no checks ran"


def _figures(counts: RunCounts | None, wal: WalSample | None) -> str:
    out: list[str] = []
    if counts is not None:
        out.append(f"{counts.executions} execution{'s' if counts.executions != 1 else ''}, "
                   f"{counts.running} running")
        if counts.lost:
            out.append(f"{counts.lost} lost")
    if wal is not None:
        out.append(f"WAL {_mib(wal.wal_size)}" if wal.wal_exists else "no WAL (closed)")
    return ", ".join(out)


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1048576:.1f} MiB"

