"""Checks that a storage root holds what the real StepFlow Monitor service's rules imply
(STEPFLOW_STORE.md), shared by the demo writer's tests. Reads with a connection of the
test's own, never the writer's."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
LOG_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\] ")
LOG_NAME = re.compile(r"^step_(\d+)_([0-9a-f-]{36})\.log$")


def db_path(root: Path) -> Path:
    return root / "database" / "stepflow.db"


def read_only(root: Path) -> sqlite3.Connection:
    """A monitor-style connection: mode=ro, no transaction kept open between queries."""
    uri = "file:" + quote(str(db_path(root).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
    conn.execute("PRAGMA query_only=1")
    return conn


def query(root: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = read_only(root)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def check_step_logs(root: Path, execution_id: str, steps: list[tuple]) -> None:
    """A saved step's log holds well-formed lines; a step saved with no output yet (or a
    running one whose output came after its last save) may have no file."""
    for step_id, index, status, *_ in steps:
        log = root / "executions" / execution_id / f"step_{index}_{step_id}.log"
        if status == "running" and not log.exists():
            continue
        lines = log.read_bytes().split(b"\n")
        assert lines[-1] == b"" and len(lines) > 1
        assert all(LOG_LINE.match(line) for line in lines[:-1])


def check_finished_executions(root: Path) -> int:
    """Assert what the real service's rules imply for every finished execution; return
    how many there are."""
    conn = read_only(root)
    try:
        executions = conn.execute(
            "SELECT id, status, exit_code, error_message, created_at, started_at,"
            " completed_at, total_steps, completed_steps, current_step_index"
            " FROM executions WHERE status IN ('completed', 'failed')").fetchall()
        for (execution_id, status, exit_code, error, created, started, completed,
             total, done, current) in executions:
            steps = conn.execute(
                "SELECT id, step_index, status, exit_code, error_message, name, stop_on_error,"
                " created_at, started_at, completed_at FROM steps WHERE execution_id = ?"
                " ORDER BY step_index", (execution_id,)).fetchall()
            assert [s[1] for s in steps] == list(range(len(steps)))
            # total_steps counts STEP_START, completed_steps only STEP_COMPLETE markers.
            assert total == len(steps) and current == len(steps) - 1
            assert done == sum(1 for s in steps if s[2] == "completed")
            for stamp in (created, started, completed):
                assert TIMESTAMP.match(stamp), stamp
            assert created <= started <= completed
            for _id, _index, step_status, step_code, step_error, *_rest, end in steps:
                assert step_status in ("completed", "failed", "running")
                assert (end is None) == (step_status == "running")
                if step_status == "completed":
                    assert step_code == 0 and step_error is None
                if step_status == "failed":
                    assert step_code == 1 and step_error  # STEP_ERROR
            last = steps[-1] if steps else None
            if status == "completed":
                assert exit_code == 0
            elif error is not None and error.startswith("Critical step failed"):
                assert last is not None and last[6] == 1  # a stop_on_error step
            else:
                assert exit_code != 0
            if exit_code == -15:  # a cancel: the step it interrupted stays running
                assert last is not None and last[2] == "running" and error is None
            if exit_code == -1:
                assert error == "Execution timed out" and last[2] == "running"
            check_step_logs(root, execution_id, steps)
        for folder in (root / "executions").iterdir():
            for log in folder.iterdir():
                assert LOG_NAME.match(log.name), log
        return len(executions)
    finally:
        conn.close()


def check_artifacts(root: Path) -> None:
    rows = query(root, "SELECT id, execution_id, name, file_path, file_name, file_size"
                       " FROM artifacts")
    for artifact_id, execution_id, name, file_path, file_name, size in rows:
        stored = root / "artifacts" / execution_id / f"{artifact_id}_{name}"
        if size:
            assert Path(file_path) == stored.resolve()
            assert stored.stat().st_size == size and file_name == name
        else:
            assert not stored.exists() and file_name == ""
            assert not Path(file_path).is_relative_to(root)
