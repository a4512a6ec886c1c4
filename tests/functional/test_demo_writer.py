"""The demo writer against real files: it must write a store the way the real StepFlow
Monitor service does (schema, pragmas, the two-save execution row, whole-file log
rewrites, implicit step ends, cancels and timeouts stored as failed, in-flight runs saved
``running`` on shutdown), live in a separate process, and in bulk for benchmarks; and it
must never write to a store it did not create."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import FIXTURE, WriterProcess, wait_for
from stepflow_top.demo import scripts
from stepflow_top.demo.marker import MARKER_NAME, ForeignStoreError
from stepflow_top.demo.writer import populate, run
from store_checks import (
    TIMESTAMP,
    check_artifacts,
    check_finished_executions,
    db_path,
    query,
)

FINAL = ("completed", "failed")


# ----------------------------------------------------------------------------- helpers


def normalised_schema(database: Path) -> list[tuple[str, str, str, str | None]]:
    conn = sqlite3.connect(f"file:{quote(str(database))}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        conn.close()
    return sorted((t, n, tbl, " ".join(sql.split()) if sql else None) for t, n, tbl, sql in rows)


def exact_schema(database: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{quote(str(database))}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fixture_database(tmp_path_factory) -> Path:
    """A writable copy of the real service's database file."""
    source = FIXTURE / "database" / "stepflow.db"
    target = tmp_path_factory.mktemp("fixture") / "stepflow.db"
    shutil.copyfile(source, target)
    return target


# ----------------------------------------------------------------------------- populate


def test_populate_writes_the_real_services_schema_verbatim(tmp_path, fixture_database):
    populate(tmp_path, executions=3)
    ours = db_path(tmp_path)
    assert normalised_schema(ours) == normalised_schema(fixture_database)
    assert exact_schema(ours) == exact_schema(fixture_database)


def test_populate_builds_the_requested_counts(tmp_path):
    populate(tmp_path, executions=40, steps_per_execution=3, running=3, seed=5)
    # Closing the only connection checkpointed and removed the WAL files (look before a
    # read-only connection of ours creates them again).
    assert not (tmp_path / "database" / "stepflow.db-wal").exists()
    assert not (tmp_path / "database" / "stepflow.db-shm").exists()

    assert query(tmp_path, "PRAGMA journal_mode") == [("wal",)]
    assert query(tmp_path, "SELECT count(*) FROM executions") == [(43,)]
    assert query(tmp_path, "SELECT count(*) FROM steps") == [(43 * 3,)]
    statuses = dict(query(tmp_path, "SELECT status, count(*) FROM executions GROUP BY 1"))
    assert statuses.pop("pending") == 3 and set(statuses) <= set(FINAL)
    assert sum(statuses.values()) == 40
    created = [c for (c,) in query(tmp_path, "SELECT created_at FROM executions ORDER BY rowid")]
    assert created == sorted(created) and len(set(created)) == 43


def test_populate_leaves_in_flight_executions_pending_with_a_running_step(tmp_path):
    populate(tmp_path, executions=5, steps_per_execution=4, running=2, seed=1)

    pending = query(tmp_path, "SELECT id, started_at, total_steps, completed_steps,"
                              " current_step_index FROM executions WHERE status = 'pending'")
    assert len(pending) == 2
    for execution_id, started, total, done, current in pending:
        assert (started, total, done, current) == (None, 0, 0, -1)
        steps = query(tmp_path, "SELECT id, step_index, status FROM steps"
                                " WHERE execution_id = ? ORDER BY step_index", (execution_id,))
        assert [s[2] for s in steps] == ["completed"] * 3 + ["running"]
        logs = sorted(p.name for p in (tmp_path / "executions" / execution_id).iterdir())
        assert logs == sorted(f"step_{index}_{step_id}.log" for step_id, index, _ in steps)
        first = tmp_path / "executions" / execution_id / f"step_0_{steps[0][0]}.log"
        assert b"\x1b[" in first.read_bytes() and b"[/]" in first.read_bytes()
    # Bulk rows get no log folders: only the two in-flight executions have one.
    assert len(list((tmp_path / "executions").iterdir())) == 2


def test_populate_bulk_rows_are_consistent_and_reproducible(tmp_path):
    populate(tmp_path / "a", executions=30, steps_per_execution=2, running=0, seed=9)
    populate(tmp_path / "b", executions=30, steps_per_execution=2, running=0, seed=9)
    ids = "SELECT id, name, status FROM executions ORDER BY rowid"
    assert query(tmp_path / "a", ids) == query(tmp_path / "b", ids)
    rows = query(tmp_path / "a", "SELECT e.total_steps, e.completed_steps, count(s.id),"
                                 " sum(s.status = 'completed') FROM executions e"
                                 " JOIN steps s ON s.execution_id = e.id GROUP BY e.id")
    assert all(total == count and done == completed for total, done, count, completed in rows)


@pytest.mark.parametrize("kwargs", [
    {"executions": -1}, {"executions": 1, "running": -1},
    {"executions": 1, "steps_per_execution": 0},
])
def test_populate_rejects_impossible_counts(tmp_path, kwargs):
    with pytest.raises(ValueError):
        populate(tmp_path, **kwargs)


# ----------------------------------------------------------------------------- run()


def test_run_writes_consistent_executions_logs_and_artifacts(tmp_path):
    finished = run(tmp_path, seconds=2.5, speed=10, seed=7)

    assert not (tmp_path / "database" / "stepflow.db-wal").exists()
    assert not (tmp_path / "database" / "stepflow.db-shm").exists()
    assert finished >= 1
    assert check_finished_executions(tmp_path) == finished
    check_artifacts(tmp_path)


def test_run_returns_when_stop_is_set(tmp_path):
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(tmp_path, stop=stop, speed=5)))
    thread.start()
    wait_for(lambda: (tmp_path / "executions").is_dir())
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive() and len(result) == 1


def test_the_catalogue_exercises_literal_text_handling():
    texts = [line for script in scripts.SCRIPTS for spec in script.steps
             for line in spec.lines + (spec.failure.lines if spec.failure else ())]
    assert any("\x1b[" in t for t in texts if isinstance(t, str))
    assert any("[bold]" in t for t in texts if isinstance(t, str))
    assert any("[@click=" in t for t in texts if isinstance(t, str))
    for line in scripts.INVALID_UTF8_LINES:
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")


def test_run_saves_the_runs_in_flight_running_when_it_ends(tmp_path):
    # At speed 1 the first run is still in flight after one second (its actions are due in
    # virtual time: nothing due after the deadline runs, however late the loop is).
    run(tmp_path, seconds=1.0, speed=1, seed=3)
    rows = query(tmp_path, "SELECT status, started_at, completed_at, exit_code FROM executions")
    assert rows and all(status == "running" and TIMESTAMP.match(started)
                        and completed is None and code is None
                        for status, started, completed, code in rows)


def test_run_after_a_hang_up_leaves_the_runs_in_flight_pending(tmp_path):
    hang_up = threading.Event()
    hang_up.set()
    run(tmp_path, seconds=1.0, speed=1, seed=3, hang_up=hang_up)
    rows = query(tmp_path, "SELECT status, started_at, total_steps FROM executions")
    assert rows == [("pending", None, 0)] * len(rows) and rows


@pytest.mark.parametrize("style, same_rowids", [("update", True), ("replace", False)])
def test_save_style_decides_whether_a_saved_row_keeps_its_rowid(tmp_path, style, same_rowids):
    run(tmp_path, seconds=1.5, speed=10, seed=7, save_style=style)
    for table in ("executions", "steps"):
        (count, top), = query(tmp_path, f"SELECT count(*), max(rowid) FROM {table}")
        # UPDATE keeps the rowid of the first INSERT; INSERT OR REPLACE takes a new one.
        assert (top == count) is same_rowids, (table, count, top)


@pytest.mark.parametrize("kwargs", [{"speed": 0}, {"speed": -1}, {"seconds": -1},
                                    {"save_style": "upsert"}])
def test_run_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        run(tmp_path, **kwargs)


# ----------------------------------------------------------------------------- demo stores only


def test_the_demo_writer_refuses_a_store_it_did_not_create(fixture_store):
    database = fixture_store / "database" / "stepflow.db"
    before = database.read_bytes()
    for target in (fixture_store, fixture_store / "database", database,
                   fixture_store / "executions"):
        result = subprocess.run(
            [sys.executable, "-m", "stepflow_top", "--demo-writer", str(target),
             "--seconds", "1"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "only writes to a new or empty folder" in lines[0]
        assert not (target / MARKER_NAME).exists()
    assert database.read_bytes() == before
    assert not (fixture_store / "database" / "stepflow.db-wal").exists()
    assert sorted(p.name for p in fixture_store.rglob("*")
                  if p.is_dir() and p.name in ("database", "executions")) == [
        "database", "executions"]
    with pytest.raises(ForeignStoreError):
        run(fixture_store, seconds=0)
    with pytest.raises(ForeignStoreError):
        populate(fixture_store, executions=1)


def test_a_store_the_demo_made_is_marked_and_written_again_after_a_restart(tmp_path):
    root = tmp_path / "demo"
    run(root, seconds=0.3, speed=10, seed=1)
    first = query(root, "SELECT count(*) FROM executions")[0][0]
    assert (root / MARKER_NAME).is_file() and first >= 1
    run(root, seconds=0.3, speed=10, seed=2)
    assert query(root, "SELECT count(*) FROM executions")[0][0] > first


# ----------------------------------------------------------------------------- live process


def live_pending_with_running_step(root: Path) -> list[tuple]:
    if not db_path(root).exists():
        return []
    try:
        return query(root, "SELECT e.id, e.started_at, e.total_steps, e.current_step_index"
                           " FROM executions e JOIN steps s ON s.execution_id = e.id"
                           " WHERE e.status = 'pending' AND s.status = 'running' LIMIT 1")
    except sqlite3.OperationalError:  # the writer has not created its tables yet
        return []


def test_a_live_writer_process_looks_like_the_real_service(tmp_path, fixture_database):
    root = tmp_path / "live"
    process = WriterProcess(root, speed=8, seed=7)
    try:
        # A running script: its row still says pending, only its step says running.
        (execution_id, started, total, current), = wait_for(
            lambda: live_pending_with_running_step(root), timeout=15)
        assert (started, total, current) == (None, 0, -1)
        assert query(root, "PRAGMA journal_mode") == [("wal",)]
        wait_for(lambda: query(root, "SELECT count(*) FROM executions"
                                     " WHERE status IN ('completed', 'failed')")[0][0] >= 2,
                 timeout=15)
    finally:
        process.process.send_signal(signal.SIGTERM)
        try:
            code = process.process.wait(timeout=10)
        finally:
            process.stop()
    stderr = process.process.stderr.read().decode("utf-8", "replace")
    assert code == 0, stderr
    assert "Traceback" not in stderr
    # The writer closed its connection: SQLite checkpointed and deleted -wal/-shm.
    assert not (root / "database" / "stepflow.db-wal").exists()
    # Like the real service's shutdown, SIGTERM saved every run in flight 'running'.
    assert query(root, "SELECT count(*) FROM executions WHERE status = 'pending'") == [(0,)]
    assert normalised_schema(db_path(root)) == normalised_schema(fixture_database)
    assert check_finished_executions(root) >= 2
    check_artifacts(root)


def test_the_writer_exits_cleanly_on_sigint(tmp_path):
    root = tmp_path / "live"
    process = subprocess.Popen(
        [sys.executable, "-m", "stepflow_top.demo.writer", str(root), "--speed", "10",
         "--seed", "3"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: live_pending_with_running_step(root), timeout=15)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr


def test_a_hang_up_ends_the_writer_cleanly_leaving_its_runs_pending(tmp_path):
    root = tmp_path / "live"
    process = WriterProcess(root, speed=2, seed=5)
    try:
        wait_for(lambda: live_pending_with_running_step(root), timeout=15)
        process.process.send_signal(signal.SIGHUP)
        code = process.process.wait(timeout=10)
    finally:
        process.stop()
    stderr = process.process.stderr.read().decode("utf-8", "replace")
    assert code == 0 and "Traceback" not in stderr, stderr
    assert not (root / "database" / "stepflow.db-wal").exists()
    assert query(root, "SELECT count(*) FROM executions WHERE status = 'running'") == [(0,)]
