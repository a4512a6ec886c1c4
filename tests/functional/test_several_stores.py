"""``--once``, ``--check`` and ``--events`` given several stores (issue 10, "Several
stores"): one output naming each store, the worst state over them, and a store that
cannot be read does not stop the others."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import FIXTURE, AttachedService, copy_store, restamp_store, wait_for
from service_writer import ServiceWriter

# Monitoring Plugins guidelines, "Performance data": 'label'=value[UOM];warn;crit;min;max
# (a label with a space is quoted; the quote inside is doubled).
PERF_ITEM = re.compile(r"^('([^']|'')+'|[^'= ]+)=(U|-?[0-9.]+)(B|s|%|c)?(;[^; ]*){0,4}$")


def stepflow_top(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "stepflow_top", *args],
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


@pytest.fixture
def two_stores(tmp_path) -> list[str]:
    """Two copies of the fixture, the second named ``night shift`` (a space: quoted
    perfdata labels)."""
    copy_store(FIXTURE, tmp_path / "day")
    copy_store(FIXTURE, tmp_path / "night")
    return [str(tmp_path / "day"), f"night shift={tmp_path / 'night'}"]


def test_once_prints_a_section_per_store(two_stores):
    result = stepflow_top(*two_stores, "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[day]\n")
    assert "\n\n[night shift]\n" in result.stdout
    assert result.stdout.count("data-report") == 2


def test_once_json_lists_the_stores_and_one_store_keeps_its_shape(two_stores):
    several = json.loads(stepflow_top(*two_stores, "--once", "--json").stdout)
    assert [d["store"]["name"] for d in several["stores"]] == ["day", "night shift"]
    assert all(d["counts"]["executions"] == 3 for d in several["stores"])
    one = json.loads(stepflow_top(two_stores[0], "--once", "--json").stdout)
    assert one["store"]["name"] == "day" and one["counts"]["executions"] == 3
    assert set(one) == set(several["stores"][0])


def test_once_shows_the_readable_stores_and_exits_2_for_the_other(two_stores, tmp_path):
    result = stepflow_top(two_stores[0], str(tmp_path / "gone"), "--once", "--json")
    assert result.returncode == 2
    assert result.stderr.startswith("stepflow-top: gone: no database at ")
    stores = json.loads(result.stdout)["stores"]
    assert stores[0]["counts"]["executions"] == 3
    assert stores[1]["store"]["name"] == "gone" and "no database" in stores[1]["error"]


def test_check_is_one_plugin_line_with_the_worst_state(two_stores, tmp_path):
    restamp_store(tmp_path / "night", datetime.now() - timedelta(seconds=5))
    service = AttachedService(tmp_path / "night" / "database" / "stepflow.db")
    try:  # night is served and sound; day's run is lost (WARNING)
        result = stepflow_top(*two_stores, "--check")
        document = json.loads(stepflow_top(*two_stores, "--check", "--json").stdout)
    finally:
        service.stop()
    assert result.returncode == 1, result.stdout
    first, *rest = result.stdout.splitlines()
    text, perf = first.split(" | ")
    assert text.startswith("STEPFLOW WARNING - day WARNING: lost_runs (1); 3 executions")
    assert " / night shift OK: 3 executions, 1 running" in text
    items = [m.group(0) for m in re.finditer(r"('(?:[^']|'')+'|[^' ]+)=\S+", perf)]
    assert " ".join(items) == perf
    assert [i for i in items if not PERF_ITEM.match(i)] == []
    labels = dict(item.rsplit("=", 1) for item in items)
    assert labels["day:lost"] == "1;0;;0" and labels["'night shift:lost'"] == "0;0;;0"
    assert labels["day:db_bytes"].endswith("B;;;0")
    assert any(line.startswith("! day: lost_runs ") for line in rest)
    assert any(line.startswith("    day: WARNING execution 77c5563f") for line in rest)
    assert any(line.startswith("✓ night shift: lost_runs ") for line in rest)
    assert document["state"] == "WARNING" and document["exit_code"] == 1
    assert [s["store"] for s in document["stores"]] == ["day", "night shift"]
    assert [s["state"] for s in document["stores"]] == ["WARNING", "OK"]


def test_a_store_that_cannot_be_opened_is_unknown_in_the_line(two_stores, tmp_path):
    result = stepflow_top(two_stores[0], str(tmp_path / "gone"), "--check")
    assert result.returncode == 1  # WARNING outranks UNKNOWN (max_state_alt order)
    first = result.stdout.splitlines()[0]
    assert first.startswith("STEPFLOW WARNING - day WARNING: ")
    assert " / gone UNKNOWN: no database at " in first and "gone:executions=U;;;0" in first
    assert "? gone: no database at " in result.stdout


def test_events_merge_the_stores_and_go_on_without_an_unreadable_one(tmp_path):
    old = copy_store(FIXTURE, tmp_path / "old")
    with sqlite3.connect(old / "database" / "stepflow.db") as conn:
        conn.execute("PRAGMA journal_mode=DELETE")  # a not_wal warning at the start
    conn.close()
    result = stepflow_top(str(old), f"gone={tmp_path / 'gone'}", "--events", "--seconds", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"v": 1, "store": "old", "type": "warning", "code": "not_wal"}.items() <= \
        lines[0].items()
    assert result.stderr.startswith("stepflow-top: gone: no database at ")
    nothing = stepflow_top(str(tmp_path / "a"), str(tmp_path / "b"), "--events")
    assert nothing.returncode == 2
    assert nothing.stderr.startswith("stepflow-top: a: no database at ")
    assert "; b: no database at " in nothing.stderr


def test_one_store_events_carry_the_version_and_store(fixture_store):
    root = Path(fixture_store)
    with sqlite3.connect(root / "database" / "stepflow.db") as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    result = stepflow_top(f"prod={root}", "--events", "--seconds", "1")
    first = json.loads(result.stdout.splitlines()[0])
    assert (first["v"], first["store"], first["type"]) == (1, "prod", "warning")


def test_a_store_that_appears_later_joins_the_stream(tmp_path):
    old = copy_store(FIXTURE, tmp_path / "old")
    stream = subprocess.Popen(
        [sys.executable, "-m", "stepflow_top", str(old), str(tmp_path / "late"), "--events",
         "--refresh", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    said: list[str] = []
    readers = [threading.Thread(target=lambda: lines.extend(json.loads(x) for x in stream.stdout),
                                daemon=True),
               threading.Thread(target=lambda: said.extend(stream.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    service = None
    try:
        wait_for(lambda: said)  # the stream has found no store at late
        assert said[0].startswith("stepflow-top: late: no database at ")
        service = ServiceWriter(tmp_path / "late")  # the store is created now
        tries = iter(range(1_000_000))

        def late_run_seen() -> bool:
            if next(tries) % 20 == 0:
                service.start("late-run")
            return any(e["store"] == "late" and e["type"] == "execution" for e in lines)

        wait_for(late_run_seen, timeout=30, interval=0.1)
    finally:
        if service is not None:
            service.close()
        stream.terminate()
        stream.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=10)
    assert len(said) == 1, said
