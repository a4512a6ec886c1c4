"""The demo writer against real files: it must write a store the way the real StepFlow
Monitor service does (schema, pragmas, the two-save execution row, whole-file log
rewrites), live in a separate process, and in bulk for benchmarks."""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from stepflow_top.demo import catalogue
from stepflow_top.demo.writer import populate, run

from conftest import FIXTURE, WriterProcess, wait_for

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
LOG_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\] ")
LOG_NAME = re.compile(r"^step_(\d+)_([0-9a-f-]{36})\.log$")
FINAL = ("completed", "failed")


# ----------------------------------------------------------------------------- helpers


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


def check_finished_executions(root: Path) -> int:
    """Assert what must hold for every finished execution; return how many there are."""
    conn = read_only(root)
    try:
        executions = conn.execute(
            "SELECT id, status, exit_code, error_message, created_at, started_at,"
            " completed_at, total_steps, completed_steps, current_step_index"
            " FROM executions WHERE status IN ('completed', 'failed')").fetchall()
        for (execution_id, status, exit_code, error, created, started, completed,
             total, done, current) in executions:
            steps = conn.execute(
                "SELECT id, step_index, status, exit_code, error_message, created_at,"
                " started_at, completed_at FROM steps WHERE execution_id = ?"
                " ORDER BY step_index", (execution_id,)).fetchall()
            assert [s[1] for s in steps] == list(range(len(steps)))
            assert total == len(steps)
            assert done == sum(1 for s in steps if s[2] == "completed")
            assert current == len(steps) - 1
            for stamp in (created, started, completed):
                assert TIMESTAMP.match(stamp), stamp
            assert created <= started <= completed
            if status == "completed":
                assert exit_code == 0 and error is None
                assert all(s[2] == "completed" and s[3] == 0 for s in steps)
            else:
                assert exit_code not in (0, None) and error
                assert steps[-1][2] == "failed" and steps[-1][3] == exit_code
                assert steps[-1][4]
                assert all(s[2] == "completed" for s in steps[:-1])
            for step_id, index, _status, _code, _error, *stamps in steps:
                assert all(TIMESTAMP.match(stamp) for stamp in stamps)
                log = root / "executions" / execution_id / f"step_{index}_{step_id}.log"
                lines = log.read_bytes().split(b"\n")
                assert lines[-1] == b"" and len(lines) > 1
                assert all(LOG_LINE.match(line) for line in lines[:-1])
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


@pytest.mark.parametrize("kwargs", [{"speed": 0}, {"speed": -1}, {"seconds": -1}])
def test_run_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        run(tmp_path, **kwargs)


def test_the_catalogue_exercises_literal_text_handling():
    texts = [line for script in catalogue.SCRIPTS for spec in script.steps
             for line in spec.lines + (spec.failure.lines if spec.failure else ())]
    assert any("\x1b[" in t for t in texts if isinstance(t, str))
    assert any("[bold]" in t for t in texts if isinstance(t, str))
    assert any("[@click=" in t for t in texts if isinstance(t, str))
    for line in catalogue.INVALID_UTF8_LINES:
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")


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
