"""StepFlow consistency checks on the real fixture and on hand-made inconsistent stores."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from stepflow_top.consistency import (
    CONSISTENCY_CHECKS,
    run_consistency_checks,
)

# The fixture was taken at about this local time; its running step started 19:56:01.
FIXTURE_NOW = datetime(2026, 11, 21, 19, 57, 0)

DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"
RUNNING_STEP = "6d7d209f-f62c-4441-8131-1b4bdf32e707"
NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
NIGHTLY_STEP0 = "03610f8c-4e5f-4950-bc88-11ca83df76c2"


@pytest.fixture
def store(fixture_store: Path) -> Path:
    """A writable copy of the stepflow-midrun fixture (conftest.py)."""
    return fixture_store


def by_name(results):
    assert [r.name for r in results] == list(CONSISTENCY_CHECKS)
    return {r.name: r for r in results}


def test_fixture_is_consistent(store: Path) -> None:
    results = by_name(run_consistency_checks(store, now=FIXTURE_NOW))
    for r in results.values():
        assert r.ok and r.status == "ok", r
        assert r.details == []
    # The same from database/ and from the .db file.
    for p in (store / "database", store / "database" / "stepflow.db"):
        assert all(r.ok for r in run_consistency_checks(p, now=FIXTURE_NOW))


def test_fixture_two_days_later_has_a_stuck_step(store: Path) -> None:
    results = by_name(run_consistency_checks(store, now=FIXTURE_NOW + timedelta(days=2)))
    stuck = results["stuck_executions"]
    assert stuck.status == "failed"
    assert len(stuck.details) == 1
    assert RUNNING_STEP in stuck.details[0] and "Data Collection" in stuck.details[0]
    assert all(r.ok for n, r in results.items() if n != "stuck_executions")


def _edit(store: Path, *sql: str) -> None:
    conn = sqlite3.connect(store / "database" / "stepflow.db")
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


def test_hand_made_inconsistencies(store: Path) -> None:
    old = (FIXTURE_NOW - timedelta(days=3)).isoformat()
    _edit(
        store,
        # a step and an artifact whose execution is gone, an artifact naming no step
        "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) "
        "VALUES ('lost-step', 'gone-exec', 'Lost', 0, 'completed', '2026-11-21T19:00:00')",
        "INSERT INTO artifacts (id, execution_id, name, file_path, created_at) "
        "VALUES ('lost-art', 'gone-exec', 'a', '/x', '2026-11-21T19:00:00')",
        f"INSERT INTO artifacts (id, execution_id, step_id, name, file_path, created_at) "
        f"VALUES ('bad-step-art', '{NIGHTLY}', 'no-such-step', 'b', '/y', "
        f"'2026-11-21T19:00:00')",
        # totals that disagree with the step rows
        f"UPDATE executions SET completed_steps = 4 WHERE id = '{NIGHTLY}'",
        # a pending execution that never started, long ago
        "INSERT INTO executions (id, name, command, status, created_at) "
        f"VALUES ('never-ran', 'crashed', 'x.sh', 'pending', '{old}')",
        # a step left running in a finished execution
        "INSERT INTO steps (id, execution_id, name, step_index, status, created_at, "
        f"started_at) VALUES ('left-running', '{NIGHTLY}', 'Tail', 5, 'running', "
        "'2026-11-21T19:55:41', '2026-11-21T19:55:41')",
        # a row with a timestamp that cannot be read
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES ('odd-time', 'odd', 'x', 'pending', 'yesterday-ish')",
    )
    execs = store / "executions"
    (execs / "ghost-exec").mkdir()
    (execs / "ghost-exec" / "step_0_ghost-step.log").write_text("[t] hi\n")
    # the nightly step 0 log copied into another execution's folder
    shutil.copy(execs / NIGHTLY / f"step_0_{NIGHTLY_STEP0}.log",
                execs / DATA_REPORT / f"step_0_{NIGHTLY_STEP0}.log")
    # a completed step whose log is gone
    (execs / NIGHTLY / "step_4_897e4cdf-288e-4cab-aef3-8ed7168430e5.log").unlink()
    (execs / DATA_REPORT / "notes.txt").write_text("not a log")  # ignored

    results = by_name(run_consistency_checks(store, now=FIXTURE_NOW, batch=2))

    orphans = results["orphan_rows"]
    assert orphans.status == "failed" and len(orphans.details) == 3
    text = "\n".join(orphans.details)
    assert "step lost-step" in text and "artifact lost-art" in text
    assert "artifact bad-step-art names step no-such-step" in text

    totals = results["execution_totals"]
    assert totals.status == "failed" and len(totals.details) == 1
    assert NIGHTLY in totals.details[0] and "completed_steps=4" in totals.details[0]

    stuck = results["stuck_executions"]
    assert stuck.status == "failed"
    text = "\n".join(stuck.details)
    assert "never-ran" in text and "no steps" in text
    assert "left-running" in text and "execution is completed" in text
    assert "note: execution odd-time (odd): timestamps cannot be read" in text
    assert RUNNING_STEP not in text  # running for a minute only: fine

    logs = results["orphaned_logs"]
    assert logs.status == "failed" and len(logs.details) == 2
    text = "\n".join(logs.details)
    assert "executions/ghost-exec/step_0_ghost-step.log: no step ghost-step" in text
    assert "execution ghost-exec does not exist" in text
    assert f"step {NIGHTLY_STEP0} belongs to execution {NIGHTLY}" in text

    missing = results["missing_logs"]
    assert missing.ok and missing.status == "ok"  # a silent step has no log: a note
    assert len(missing.details) == 2  # the deleted log, and lost-step's
    assert all(d.startswith("note: ") for d in missing.details)
    assert any("897e4cdf" in d for d in missing.details)

    # Paging does not change the findings.
    again = by_name(run_consistency_checks(store, now=FIXTURE_NOW, batch=1000))
    for name in CONSISTENCY_CHECKS:
        assert sorted(again[name].details) == sorted(results[name].details)


def test_store_that_cannot_be_read(tmp_path: Path, store: Path) -> None:
    results = run_consistency_checks(tmp_path / "nothing-here")
    assert [r.status for r in results] == ["error"] * len(CONSISTENCY_CHECKS)
    assert "no StepFlow database" in results[0].details[0]

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE executions(id TEXT)")
    conn.close()
    results = run_consistency_checks(other)
    assert all(r.status == "error" for r in results)
    assert "no table steps, artifacts" in results[0].details[0]

    stop = threading.Event()
    stop.set()
    results = run_consistency_checks(store, cancel=stop)
    assert [r.status for r in results] == ["cancelled"] * len(CONSISTENCY_CHECKS)


def test_a_path_without_a_database_gives_one_clear_error_per_check(store: Path) -> None:
    results = run_consistency_checks(store / "executions", now=FIXTURE_NOW)
    assert [r.name for r in results] == list(CONSISTENCY_CHECKS)
    assert all(r.status == "error" and not r.ok for r in results)
    assert "no StepFlow database" in results[0].details[0]


def test_checks_do_not_write(store: Path) -> None:
    db = store / "database" / "stepflow.db"
    before = db.read_bytes()
    run_consistency_checks(store, now=FIXTURE_NOW)
    assert db.read_bytes() == before
    leftovers = {p.name for p in (store / "database").iterdir()}
    assert leftovers <= {"stepflow.db", "stepflow.db-wal", "stepflow.db-shm"}
