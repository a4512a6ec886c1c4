"""Prometheus metrics of watched stores: counters and histograms observed from the change
feed's events, and a custom collector over the feed's state.

Nothing here polls. Each store's change feed (``live.events.watched_feed``) keeps a
:class:`~stepflow_top.live.events.FeedState` (its latest snapshot, health reading and
integrity run). What the feed's events report (runs and steps reaching a final status,
WAL resets, checkpoints) is counted in prometheus_client ``Counter`` and ``Histogram``
objects (:class:`Observed`) as events come; :class:`StepflowCollector` turns the state
into gauges when Prometheus scrapes (prometheus_client's "custom collector": ``collect()``
runs per scrape, in the HTTP server's thread). Effective statuses are judged at scrape
time, so a run that stalls or is lost between two looks is counted as such.
:func:`exporter_registry` puts both in one registry.

Names follow Prometheus' naming practice (prometheus.io/docs/practices/naming: one
``stepflow_`` prefix, base units, ``_total`` for counters, ``_bytes``/``_seconds``),
labels are low-cardinality only (``store``, ``status``, ``kind``). Where Litestream
exports the same figure the meaning is Litestream's (litestream.io/reference/metrics:
``litestream_db_size`` and ``litestream_wal_size`` are the current sizes of the database
and ``-wal`` files in bytes, as ``stepflow_db_size_bytes`` and ``stepflow_wal_size_bytes``).
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections import OrderedDict
from datetime import datetime
from typing import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..store.locate import StorePaths
from ..store.models import FINAL_EXECUTION, Status, effective_steps
from ..wal.integrity import CHECKS
from .events import FeedState

#: Execution duration buckets, seconds: StepFlow runs last from seconds to hours.
EXECUTION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: Step duration buckets, seconds.
STEP_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
#: Final effective statuses a run is counted in once (``lost`` included: nothing will
#: finish it).
FINISHED = ("completed", "failed", "cancelled", "lost")
#: Final step statuses (``store.models.STEP_SYMBOLS`` minus running and pending).
STEP_FINISHED = ("completed", "failed", "skipped", "lost")
CHECKPOINT_KINDS = ("truncate", "backfill", "interrupted")
#: ``CheckResult.status`` of a check that did not run to the end (``wal.results``).
STOPPED = ("cancelled", "timeout", "error")
REMEMBERED = 20_000  # ids counted once; a re-save after this many later ones is rare


class _Once:
    """Keys seen, the oldest forgotten past REMEMBERED."""

    def __init__(self) -> None:
        self._seen: OrderedDict[object, None] = OrderedDict()

    def first(self, key: object) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        return True


class Observed:
    """The metrics counted from feed events, registered in ``registry``; every store's
    series are told apart by the ``store`` label (``StorePaths.label``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        store, status, kind = ("store",), ("store", "status"), ("store", "kind")
        # The counters are registered before the histograms, so a scrape reads them
        # first; StoreMetrics.observe writes the histograms first. A scrape that sees a
        # run counted as finished therefore sees its duration too.
        self.finished = Counter(
            "stepflow_executions_finished", "Executions seen reaching a final status "
            "since the exporter started.", status, registry=registry)
        self.resets = Counter(
            "stepflow_wal_resets", "WAL resets (the -wal restarted from its start after a "
            "complete checkpoint) seen since the exporter started.", store, registry=registry)
        self.checkpoints = Counter(
            "stepflow_checkpoints", "Checkpoints seen since the exporter started: truncate, "
            "backfill (PASSIVE/FULL/RESTART), interrupted.", kind, registry=registry)
        self.run_time = Histogram(
            "stepflow_execution_duration_seconds", "Duration of executions seen finishing.",
            status, registry=registry, buckets=EXECUTION_BUCKETS)
        self.step_time = Histogram(
            "stepflow_step_duration_seconds", "Duration of steps seen finishing.",
            status, registry=registry, buckets=STEP_BUCKETS)


def exporter_registry(stores: list[StorePaths]
                      ) -> tuple[CollectorRegistry, list[StoreMetrics]]:
    """A registry exporting ``stores``, and their :class:`StoreMetrics` (in ``stores``'
    order, each with a new :class:`FeedState` for its feed to keep). The registry is
    made without ``auto_describe``, so it never collects before the first scrape.

    prometheus_client's ``_created`` series are turned off for the whole process
    (``disable_created_metrics``, the library's only switch for them): the exposition
    has the counters' ``_total`` and the histograms' ``_bucket``/``_count``/``_sum``
    only, as the alert rules and dashboard expect."""
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    observed = Observed(registry)
    watched = [StoreMetrics(paths, FeedState(), observed) for paths in stores]
    registry.register(StepflowCollector(watched))
    return registry, watched


class StoreMetrics:
    """The metrics of one store: its feed's ``state`` (read at scrape time) and its
    series of ``observed`` (all created at once, so that every counter and histogram
    is exported, at 0, before anything was seen). ``observe`` is called from the
    feed's loop."""

    def __init__(self, paths: StorePaths, state: FeedState, observed: Observed) -> None:
        self.paths = paths
        self.state = state
        name = paths.label
        self._finished = {s: observed.finished.labels(name, s) for s in FINISHED}
        self._run_time = {s: observed.run_time.labels(name, s) for s in FINAL_EXECUTION}
        self._step_time = {s: observed.step_time.labels(name, s) for s in STEP_FINISHED}
        self._resets = observed.resets.labels(name)
        self._checkpoints = {k: observed.checkpoints.labels(name, k) for k in CHECKPOINT_KINDS}
        self._runs_once = _Once()
        self._steps_once = _Once()

    def observe(self, events: Iterable[dict]) -> None:
        """Count one batch of feed events: a run or step reaching a final status
        (once per id, however often it is saved again), its duration from the store
        (one short read of those runs), WAL resets and checkpoints. Call it from the
        feed's loop (it reads through the feed's reader)."""
        runs: dict[str, str] = {}
        steps: dict[tuple[str, int], str] = {}
        resets, checkpoints = 0, Tally()
        for event in events:
            kind = event.get("type")
            if kind == "execution" and event.get("status") in FINISHED:
                if self._runs_once.first(event["id"]):
                    runs[event["id"]] = event["status"]
            elif kind == "step" and event.get("status") in STEP_FINISHED:
                key = (event["execution_id"], event["step_index"])
                if self._steps_once.first(key):
                    steps[key] = event["status"]
            elif kind == "wal_reset":
                resets += int(event.get("resets") or 1)
            elif kind == "checkpoint" and event.get("kind") in CHECKPOINT_KINDS:
                checkpoints[event["kind"]] += 1
            elif kind == "interrupted":
                checkpoints["interrupted"] += 1
        for histogram, seconds in self._durations(runs, steps):
            histogram.observe(seconds)
        for status in runs.values():
            self._finished[status].inc()
        if resets:
            self._resets.inc(resets)
        for kind, n in checkpoints.items():
            self._checkpoints[kind].inc(n)

    def _durations(self, runs: dict[str, str], steps: dict[tuple[str, int], str]
                   ) -> list[tuple[Histogram, float]]:
        """(histogram series, seconds) of the runs and steps in ``runs`` and ``steps``
        that have a duration."""
        timed = {i for i, s in runs.items() if s in FINAL_EXECUTION} | {e for e, _ in steps}
        snapshot = self.state.snapshot
        if not timed or snapshot is None:
            return []
        judgement = snapshot.judgement(datetime.now())
        out = []
        for execution, rows in self.state.executions_with_steps(timed):
            status = runs.get(execution.id)
            if status in FINAL_EXECUTION:
                seconds = execution.duration(judgement)
                if seconds is not None:
                    out.append((self._run_time[status], seconds))
            lost = execution.effective_status(judgement) is Status.LOST
            for view in effective_steps(execution, rows, lost):
                step_status = steps.get((execution.id, view.step.index))
                seconds = view.duration(judgement.now) if step_status else None
                if seconds is not None and view.status in STEP_FINISHED:
                    out.append((self._step_time[step_status], seconds))
        return out


class StepflowCollector(Collector):
    """``stepflow_build_info`` and the gauges of ``stores`` (one :class:`StoreMetrics`
    each, told apart by the ``store`` label, ``StorePaths.label``), computed per scrape
    from their feeds' state. Register it in a ``CollectorRegistry(auto_describe=False)``
    (:func:`exporter_registry` does): the registry then never collects before the first
    scrape."""

    def __init__(self, stores: list[StoreMetrics]) -> None:
        self.stores = stores

    def collect(self) -> Iterator:
        families = _Families()
        info = InfoMetricFamily("stepflow_build", "The stepflow-top version exporting.")
        info.add_metric([], {"version": __version__})
        yield info
        for store in self.stores:
            families.add(store, datetime.now())
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        g = GaugeMetricFamily
        store, status = ["store"], ["store", "status"]
        self.up = g("stepflow_up", "1 when the store could be read at the last look, "
                    "else 0.", labels=store)
        self.looked = g("stepflow_last_look_timestamp_seconds", "When stepflow-top last "
                        "looked at the store (Unix time): old means the exporter is stuck.",
                        labels=store)
        self.attached = g("stepflow_writer_attached", "1 when a process other than "
                          "stepflow-top has the database open (the service), 0 when none "
                          "has; absent when the locks cannot be read.", labels=store)
        self.commit = g("stepflow_last_commit_timestamp_seconds", "Modification time of "
                        "the database or its -wal, the last commit (Unix time).",
                        labels=store)
        self.executions = g("stepflow_executions", "Executions in the store by effective "
                            "status (lost: unfinished with no service attached).",
                            labels=status)
        self.db_size = g("stepflow_db_size_bytes", "Size of the database file.",
                         labels=store)
        self.wal_size = g("stepflow_wal_size_bytes", "Size of the -wal file (0 when "
                          "there is none).", labels=store)
        self.wal_live = g("stepflow_wal_live_bytes", "Bytes of the -wal used by the "
                          "current cycle (frames since the last WAL reset).", labels=store)
        self.pending = g("stepflow_wal_frames_pending", "WAL frames not yet copied into "
                         "the database by a checkpoint.", labels=store)
        self.last_checkpoint = g("stepflow_last_checkpoint_timestamp_seconds", "When the "
                                 "last checkpoint or WAL reset was seen (Unix time).",
                                 labels=store)
        self.starved = g("stepflow_checkpoint_starved", "1 when a reader's read mark has "
                         "held checkpoints back while the WAL grew.", labels=store)
        self.overdue = g("stepflow_wal_checkpoint_overdue", "1 when the WAL grew with no "
                         "checkpoint for 5 minutes.", labels=store)
        self.integrity = g("stepflow_integrity_ok", "1 when the last quick_check and "
                           "foreign_key_check found nothing, 0 when they found damage; "
                           "absent until one ran.", labels=store)
        self.integrity_at = g("stepflow_integrity_last_run_timestamp_seconds", "When the "
                              "last integrity check started (Unix time).", labels=store)

    def all(self) -> list:
        return list(vars(self).values())

    def add(self, metrics: StoreMetrics, now: datetime) -> None:
        name, state = metrics.paths.label, metrics.state
        if state.looked_at is not None:
            self.looked.add_metric([name], state.looked_at)
        snapshot = state.snapshot
        self.up.add_metric([name], 1.0 if snapshot is not None and state.error is None
                           else 0.0)
        if snapshot is None or state.error is not None:
            return  # figures of an earlier look would pass for current ones
        self._store(name, state, now)

    def _store(self, name: str, state: FeedState, now: datetime) -> None:
        snapshot = state.snapshot
        writer = snapshot.writer
        if writer.attached is not None:
            self.attached.add_metric([name], 1.0 if writer.attached else 0.0)
        if writer.last_commit is not None:
            self.commit.add_metric([name], writer.last_commit)
        by_status = snapshot.counts.by_status(snapshot.judgement(now))
        known = [s.value for s in Status]
        for status in known + sorted(set(by_status) - set(known)):
            self.executions.add_metric([name, status], by_status.get(status, 0))
        sample = snapshot.sample
        if sample is not None:
            _maybe(self.db_size, name, sample.db_size)
            _maybe(self.wal_size, name, sample.wal_size if sample.wal_exists else 0)
            _maybe(self.wal_live, name, sample.live_wal_bytes)
            _maybe(self.pending, name, sample.pending)
        health = state.health
        if health is not None:
            codes = {w.code for w in health.warnings}
            self.starved.add_metric([name], float("checkpoint_starved" in codes))
            self.overdue.add_metric([name], float("wal_no_checkpoint" in codes))
            last = next((e for e in reversed(health.events)
                         if e.label in ("truncate", "backfill", "wal_reset")), None)
            if last is not None:
                self.last_checkpoint.add_metric([name], last.wall)
        integrity = state.integrity
        if integrity is not None:
            ok = integrity_ok(integrity)
            self.integrity.add_metric([name], math.nan if ok is None else float(ok))
            self.integrity_at.add_metric([name], integrity.get("started") or integrity["ts"])


def _maybe(family: GaugeMetricFamily, name: str, value: float | None) -> None:
    if value is not None:
        family.add_metric([name], value)


def integrity_ok(event: dict) -> bool | None:
    """From an ``integrity`` event: False when a database check (``wal.integrity.CHECKS``)
    ran and found damage, True when all that ran found nothing, None when none ran to
    the end (cancelled, timed out, failed to start: that says nothing of the file)."""
    ran = [c for c in event.get("checks", ())
           if c.get("name") in CHECKS and c.get("status") not in STOPPED]
    return all(c.get("ok") for c in ran) if ran else None
