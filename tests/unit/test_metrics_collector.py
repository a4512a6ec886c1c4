"""The metrics collector's own logic: addresses, counting once, integrity results, and
what a store that was never read exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from stepflow_top.cli import UsageError
from stepflow_top.cli.metrics import DEFAULT_HOST, DEFAULT_PORT, parse_address
from stepflow_top.live.events import FeedState
from stepflow_top.live.metrics import Histogram, StepflowCollector, StoreMetrics, integrity_ok
from stepflow_top.store.locate import StorePaths


@pytest.mark.parametrize("text, address", [
    ("", (DEFAULT_HOST, DEFAULT_PORT)),
    ("9999", (DEFAULT_HOST, 9999)),
    (":9999", (DEFAULT_HOST, 9999)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:8080", ("::1", 8080)),
])
def test_addresses(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["/srv/storage", "host:", "host:70000", "x:-1"])
def test_addresses_refused(text):
    with pytest.raises(UsageError, match=r"\[HOST:\]PORT"):
        parse_address(text)


def store_metrics(name: str = "a") -> StoreMetrics:
    root = Path("/nonexistent") / name
    return StoreMetrics(StorePaths(root, root / "database" / "stepflow.db", name), FeedState())


def exposition(*stores: StoreMetrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StepflowCollector(list(stores)))
    return generate_latest(registry).decode()


def test_a_final_status_saved_again_is_counted_once():
    metrics = store_metrics()
    done = {"type": "execution", "id": "e1", "status": "completed", "previous": "running"}
    step = {"type": "step", "execution_id": "e1", "step_index": 0, "status": "completed"}
    metrics.observe([done, step])
    metrics.observe([dict(done, previous=None), step])  # re-saved, then seen again
    metrics.observe([{"type": "execution", "id": "e2", "status": "running"}])
    counted = metrics.counted()
    assert counted.finished == {"completed": 1}


def test_resets_and_checkpoints_are_summed_from_events():
    metrics = store_metrics()
    metrics.observe([{"type": "wal_reset", "resets": 3}, {"type": "wal_reset", "resets": 1},
                     {"type": "checkpoint", "kind": "truncate"},
                     {"type": "checkpoint", "kind": "backfill"},
                     {"type": "interrupted"}])
    counted = metrics.counted()
    assert counted.resets == 4
    assert counted.checkpoints == {"truncate": 1, "backfill": 1, "interrupted": 1}


def test_a_store_never_read_exports_up_0_and_its_counters_only():
    text = exposition(store_metrics("a"))
    assert 'stepflow_up{store="a"} 0.0' in text
    assert 'stepflow_executions_finished_total{status="failed",store="a"} 0.0' in text
    assert "stepflow_executions{" not in text
    assert "stepflow_integrity_ok{" not in text
    assert 'stepflow_build_info{version="' in text


def test_histogram_buckets_are_cumulative():
    histogram = Histogram((1, 10))
    for seconds in (0.5, 5, 50):
        histogram.observe("completed", seconds)
    buckets, total = histogram.samples("completed")
    assert buckets == [("1.0", 1), ("10.0", 2), ("+Inf", 3)]
    assert total == 55.5


def check(name: str, status: str = "ok", ok: bool = True) -> dict:
    return {"name": name, "status": status, "ok": ok}


@pytest.mark.parametrize("checks, ok", [
    ([check("quick_check"), check("foreign_key_check")], True),
    ([check("quick_check", ok=False), check("foreign_key_check")], False),
    ([check("quick_check", "timeout", False)], None),
    ([check("wal", ok=False), check("quick_check")], True),  # WAL warnings are not damage
    ([], None),
])
def test_integrity_ok(checks, ok):
    assert integrity_ok({"checks": checks}) is ok
