"""The scripted service (tests/service_writer.py) in its own process: each command must
leave the store as the real StepFlow Monitor service leaves it (STEPFLOW_STORE.md)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from service_writer import ServiceWriter

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
LOG_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\] (.*)$")


def rows(root: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read with a connection of the test's own (never the writer's)."""
    uri = "file:" + quote(str(root / "database" / "stepflow.db")) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execution(root: Path, execution_id: str) -> dict:
    conn_rows = rows(root, "SELECT status, exit_code, error_message, created_at, started_at,"
                           " completed_at, total_steps, completed_steps, current_step_index"
                           " FROM executions WHERE id = ?", (execution_id,))
    keys = ("status", "exit_code", "error_message", "created_at", "started_at",
            "completed_at", "total_steps", "completed_steps", "current_step_index")
    (row,) = conn_rows
    return dict(zip(keys, row, strict=True))


def step(root: Path, step_id: str) -> dict:
    keys = ("name", "step_index", "status", "exit_code", "error_message", "completed_at",
            "estimated_duration", "stop_on_error", "metadata")
    (row,) = rows(root, f"SELECT {', '.join(keys)} FROM steps WHERE id = ?", (step_id,))
    return dict(zip(keys, row, strict=True))


def log_texts(root: Path, execution_id: str, index: int, step_id: str) -> list[bytes] | None:
    """The text of each line of a step's log file (``None``: no file)."""
    path = root / "executions" / execution_id / f"step_{index}_{step_id}.log"
    if not path.exists():
        return None
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    return [LOG_LINE.match(line).group(1) for line in lines[:-1]]


def rowid(root: Path, table: str, row_id: str) -> int:
    return rows(root, f"SELECT rowid FROM {table} WHERE id = ?", (row_id,))[0][0]


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "storage"


def test_start_saves_a_pending_row_and_the_service_keeps_the_store_open(service, root):
    execution_id = service.start("nightly-etl", "alice")
    row = execution(root, execution_id)
    assert row["status"] == "pending" and TIMESTAMP.match(row["created_at"])
    assert (row["started_at"], row["completed_at"], row["exit_code"]) == (None, None, None)
    assert (row["total_steps"], row["completed_steps"], row["current_step_index"]) == (0, 0, -1)
    assert rows(root, "SELECT user_name FROM executions") == [("alice",)]
    assert rows(root, "SELECT count(*) FROM steps") == [(0,)]
    assert (root / "database" / "stepflow.db-shm").exists()


def test_a_step_start_never_re_saves_the_step_it_ends(service, root):
    execution_id = service.start("build")
    first, first_index = service.step(execution_id, "Compile")
    service.cmd("log", execution_id, "compiling")
    second, second_index = service.step(execution_id, "Package")
    assert (first_index, second_index) == (0, 1)
    assert step(root, first)["status"] == "running" and step(root, first)["completed_at"] is None
    # Its output came after its only save: it never reaches disk.
    assert log_texts(root, execution_id, 0, first) is None
    # The execution row is not re-saved either while the script runs.
    assert execution(root, execution_id)["total_steps"] == 0
    service.cmd("finish", execution_id, "completed")
    row = execution(root, execution_id)
    assert (row["status"], row["exit_code"]) == ("completed", 0)
    assert (row["total_steps"], row["completed_steps"], row["current_step_index"]) == (2, 0, 1)
    assert [step(root, s)["status"] for s in (first, second)] == ["running", "running"]


def test_marker_parameters_land_in_the_step_row_and_cut_its_name(service, root):
    execution_id = service.start("train")
    step_id, _ = service.step(execution_id, "Model Training [duration=300] [stop_on_error=true]")
    row = step(root, step_id)
    assert row["name"] == "Model Training"
    assert (row["estimated_duration"], row["stop_on_error"]) == (300.0, 1)
    assert json.loads(row["metadata"]) == {"duration": 300, "stop_on_error": True}
    other, _ = service.step(execution_id, "Build [x86] and test")
    assert step(root, other)["name"] == "Build"
    assert json.loads(step(root, other)["metadata"]) == {}


def test_output_reaches_the_log_only_when_its_step_is_saved_and_rewrites_it_whole(service, root):
    execution_id = service.start("report")
    assert service.cmd("log", execution_id, "before any step")["step_id"] is None
    step_id, index = service.step(execution_id, "Collect")
    assert service.cmd("log", execution_id, "page 1")["step_id"] == step_id
    assert log_texts(root, execution_id, index, step_id) is None
    service.cmd("meta", step_id, json.dumps({"PROGRESS": "50", "DESCRIPTION": "Collecting"}))
    assert log_texts(root, execution_id, index, step_id) == [b"page 1"]
    assert json.loads(step(root, step_id)["metadata"]) == {"PROGRESS": "50",
                                                           "DESCRIPTION": "Collecting"}
    service.cmd("log", execution_id, "  page 2  ")
    service.cmd("complete_step", step_id)
    assert log_texts(root, execution_id, index, step_id) == [b"page 1", b"page 2"]
    done = step(root, step_id)
    assert (done["status"], done["exit_code"]) == ("completed", 0)
    assert TIMESTAMP.match(done["completed_at"])


def test_step_error_fails_the_step_and_on_stop_on_error_the_execution(service, root):
    execution_id = service.start("etl")
    optional, _ = service.step(execution_id, "cache_warming[stop_on_error=false]")
    service.cmd("fail_step", optional, 1, "cache unreachable")
    critical, _ = service.step(execution_id, "load[stop_on_error=true]")
    service.cmd("fail_step", critical, 1, "disk full")
    assert [(step(root, s)["status"], step(root, s)["exit_code"], step(root, s)["error_message"])
            for s in (optional, critical)] == [("failed", 1, "cache unreachable"),
                                               ("failed", 1, "disk full")]
    with pytest.raises(RuntimeError, match="not its execution's current step"):
        service.cmd("complete_step", critical)
    service.cmd("finish", execution_id, "failed", 2)
    row = execution(root, execution_id)
    assert (row["status"], row["exit_code"]) == ("failed", 2)
    assert row["error_message"] == "Critical step failed: load - disk full"


def test_finish_failed_keeps_the_running_step_and_checks_its_exit_code(service, root):
    execution_id = service.start("deploy")
    step_id, _ = service.step(execution_id, "Rollout")
    with pytest.raises(RuntimeError, match="not what the service stores"):
        service.cmd("finish", execution_id, "completed", 3)
    service.cmd("finish", execution_id, "failed", 3)
    row = execution(root, execution_id)
    assert (row["status"], row["exit_code"], row["error_message"]) == ("failed", 3, None)
    assert row["started_at"] <= row["completed_at"]
    assert step(root, step_id)["status"] == "running"


@pytest.mark.parametrize("command, marker, stored", [
    ("cancel", "Rollout", ("failed", -15, None)),
    ("timeout", "Rollout", ("failed", -1, "Execution timed out")),
    ("cancel", "Migrate[stop_on_error=true]",
     ("failed", 1, "Critical step failed with exit code -15: Migrate")),
])
def test_cancel_and_timeout_are_stored_failed(service, root, command, marker, stored):
    execution_id = service.start("deploy")
    step_id, _ = service.step(execution_id, marker)
    service.cmd(command, execution_id)
    row = execution(root, execution_id)
    assert (row["status"], row["exit_code"], row["error_message"]) == stored
    assert step(root, step_id)["status"] == "running"
    assert rows(root, "SELECT count(*) FROM executions WHERE status = 'cancelled'") == [(0,)]


def test_a_sigterm_shutdown_saves_the_runs_in_flight_running_for_ever(service, root):
    first, second = service.start("a"), service.start("b")
    service.step(first, "Work")
    service.cmd("sigterm_save")
    for execution_id in (first, second):
        row = execution(root, execution_id)
        assert row["status"] == "running" and TIMESTAMP.match(row["started_at"])
        assert (row["completed_at"], row["exit_code"]) == (None, None)
    assert execution(root, first)["total_steps"] == 1
    with pytest.raises(RuntimeError, match="no execution"):
        service.cmd("finish", first, "completed")


def test_close_removes_wal_and_shm_and_forgets_the_runs_in_flight(service, root):
    execution_id = service.start("a")
    service.cmd("close")
    assert not (root / "database" / "stepflow.db-wal").exists()
    assert not (root / "database" / "stepflow.db-shm").exists()
    with pytest.raises(RuntimeError, match="closed"):
        service.start("b")
    service.cmd("open")
    with pytest.raises(RuntimeError, match="no execution"):
        service.cmd("finish", execution_id, "completed")
    assert execution(root, execution_id)["status"] == "pending"
    service.start("b")


def test_a_kill_leaves_pending_rows_running_steps_and_the_wal_files(tmp_path):
    root = tmp_path / "storage"
    writer = ServiceWriter(root)
    execution_id = writer.start("a")
    step_id, _ = writer.step(execution_id, "Work")
    writer.kill()
    assert (root / "database" / "stepflow.db-wal").exists()
    assert (root / "database" / "stepflow.db-shm").exists()
    assert execution(root, execution_id)["status"] == "pending"
    assert step(root, step_id)["status"] == "running"


@pytest.mark.parametrize("style, kept", [("replace", False), ("update", True)])
def test_the_save_style_decides_whether_a_row_keeps_its_rowid(service, root, style, kept):
    service.cmd("style", style)
    execution_id = service.start("a")
    step_id, _ = service.step(execution_id, "Work")
    before = rowid(root, "executions", execution_id), rowid(root, "steps", step_id)
    service.cmd("complete_step", step_id)
    service.cmd("finish", execution_id, "completed")
    after = rowid(root, "executions", execution_id), rowid(root, "steps", step_id)
    assert (after == before) is kept
    assert execution(root, execution_id)["status"] == "completed"


def test_artifacts_are_copied_when_the_file_exists(service, root):
    execution_id = service.start("report")
    step_id, _ = service.step(execution_id, "Render")
    copied = service.cmd("artifact", execution_id, "report.html", step_id, "bytes=12")["id"]
    missing = service.cmd("artifact", execution_id, "data.csv")["id"]
    (row,) = rows(root, "SELECT step_id, file_path, file_name, file_size, mime_type,"
                        " artifact_type FROM artifacts WHERE id = ?", (copied,))
    stored = root / "artifacts" / execution_id / f"{copied}_report.html"
    assert row == (step_id, str(stored.resolve()), "report.html", 12, "text/html", "other")
    assert stored.stat().st_size == 12
    (row,) = rows(root, "SELECT step_id, file_path, file_name, file_size, mime_type"
                        " FROM artifacts WHERE id = ?", (missing,))
    assert row == (None, "/workspace/data.csv", "", 0, "")


def finished_run(service: ServiceWriter) -> str:
    execution_id = service.start("run")
    step_id, _ = service.step(execution_id, "Work")
    service.cmd("log", execution_id, "working")
    service.cmd("complete_step", step_id)
    service.cmd("artifact", execution_id, "out.txt", step_id, "bytes=3")
    service.cmd("finish", execution_id, "completed")
    return execution_id


def test_housekeeping_deletes_rows_and_folders_and_rowids_restart_below(service, root):
    old, newest = finished_run(service), finished_run(service)
    top = rows(root, "SELECT max(rowid) FROM executions")[0][0]
    assert service.cmd("housekeep_newest", 1)["deleted"] == [newest]
    assert not (root / "executions" / newest).exists()
    assert not (root / "artifacts" / newest).exists()
    for table, column in (("executions", "id"), ("steps", "execution_id"),
                          ("artifacts", "execution_id")):
        assert rows(root, f"SELECT count(*) FROM {table} WHERE {column} = ?", (newest,)) == [(0,)]
    later = service.start("later")
    assert rowid(root, "executions", later) <= top  # rowids are no clock
    assert service.cmd("delete", old, "no-such-id")["deleted"] == [old]
    assert rows(root, "SELECT id FROM executions") == [(later,)]


def test_timestamps_are_the_writer_s_local_time_and_housekeeping_compares_them(tmp_path):
    root = tmp_path / "storage"
    # UTC-12, then UTC+14 (POSIX TZ strings, which need no tz database, count west
    # of Greenwich as positive): 26 hours apart.
    with ServiceWriter(root, tz="WEST+12") as west:
        early = west.start("west")
    with ServiceWriter(root, tz="EAST-14") as east:
        late = east.start("east")
        stamps = [datetime.fromisoformat(execution(root, e)["created_at"]) for e in (early, late)]
        assert timedelta(hours=25) < stamps[1] - stamps[0] < timedelta(hours=27)
        # In the east writer's zone the west run is more than a day old.
        assert east.cmd("housekeep", 1)["deleted"] == [early]
    assert rows(root, "SELECT id FROM executions") == [(late,)]
