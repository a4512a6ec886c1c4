"""The exporter's own logic: addresses, counting once, each store in its own series,
integrity results, and what a store that was never read exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from stepflow_top.cli import UsageError
from stepflow_top.cli.metrics import DEFAULT_HOST, DEFAULT_PORT, parse_address
from stepflow_top.live.metrics import StoreMetrics, exporter_registry, integrity_ok
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


def exported(*names: str) -> tuple[CollectorRegistry, list[StoreMetrics]]:
    """An exporter's registry for stores that were never read (their feeds never ran)."""
    roots = [Path("/nonexistent") / name for name in names]
    return exporter_registry([StorePaths(r, r / "database" / "stepflow.db", r.name)
                              for r in roots])


def values(registry: CollectorRegistry) -> dict[tuple, float]:
    """``{(sample name, ((label, value), ...)): value}`` of one scrape."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_final_status_saved_again_is_counted_once():
    registry, (metrics,) = exported("a")
    done = {"type": "execution", "id": "e1", "status": "completed", "previous": "running"}
    step = {"type": "step", "execution_id": "e1", "step_index": 0, "status": "completed"}
    metrics.observe([done, step])
    metrics.observe([dict(done, previous=None), step])  # re-saved, then seen again
    metrics.observe([{"type": "execution", "id": "e2", "status": "running"}])
    finished = {labels: v for (name, labels), v in values(registry).items()
                if name == "stepflow_executions_finished_total" and v}
    assert finished == {(("status", "completed"), ("store", "a")): 1.0}


def test_resets_and_checkpoints_are_summed_from_events():
    registry, (metrics,) = exported("a")
    metrics.observe([{"type": "wal_reset", "resets": 3}, {"type": "wal_reset", "resets": 1},
                     {"type": "checkpoint", "kind": "truncate"},
                     {"type": "checkpoint", "kind": "backfill"},
                     {"type": "interrupted"}])
    got = values(registry)
    assert got[("stepflow_wal_resets_total", (("store", "a"),))] == 4.0
    for kind in ("truncate", "backfill", "interrupted"):
        assert got[("stepflow_checkpoints_total", (("kind", kind), ("store", "a")))] == 1.0


def test_a_store_never_read_exports_up_0_and_its_counters_only():
    registry, _ = exported("a")
    text = generate_latest(registry).decode()
    assert 'stepflow_up{store="a"} 0.0' in text
    assert 'stepflow_executions_finished_total{status="failed",store="a"} 0.0' in text
    assert 'stepflow_wal_resets_total{store="a"} 0.0' in text
    assert 'stepflow_checkpoints_total{kind="interrupted",store="a"} 0.0' in text
    assert 'stepflow_execution_duration_seconds_bucket{le="86400.0",status="cancelled",' \
        'store="a"} 0.0' in text
    assert 'stepflow_step_duration_seconds_count{status="skipped",store="a"} 0.0' in text
    assert "stepflow_executions{" not in text
    assert "stepflow_integrity_ok{" not in text
    assert "_created" not in text  # prometheus_client's extra series are off
    assert 'stepflow_build_info{version="' in text


def test_each_store_counts_in_its_own_series():
    registry, (a, b) = exported("a", "b")
    a.observe([{"type": "wal_reset", "resets": 2}])
    b.observe([{"type": "execution", "id": "e1", "status": "lost"}])
    got = values(registry)
    assert got[("stepflow_wal_resets_total", (("store", "a"),))] == 2.0
    assert got[("stepflow_wal_resets_total", (("store", "b"),))] == 0.0
    assert got[("stepflow_executions_finished_total", (("status", "lost"), ("store", "a")))] == 0.0
    assert got[("stepflow_executions_finished_total", (("status", "lost"), ("store", "b")))] == 1.0


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
