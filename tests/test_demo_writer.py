"""The demo writer against real files: it must write a store the way the real StepFlow
Monitor service does (schema, pragmas, the two-save execution row, whole-file log
rewrites, implicit step ends, cancels and timeouts stored as failed, in-flight runs saved
``running`` on shutdown), live in a separate process, and in bulk for benchmarks; and it
must never write to a store it did not create."""

from __future__ import annotations

import random
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

from stepflow_top.demo import scripts
from stepflow_top.demo.catalogue import plan_execution
from stepflow_top.demo.engine import Engine
from stepflow_top.demo.marker import MARKER_NAME, ForeignStoreError
from stepflow_top.demo.service import _Service
from stepflow_top.demo.writer import open_store, populate, run

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


# ----------------------------------------------------------------------------- plans


def seeded_plans(count: int = 800):
    """(seed, script, plan) for ``count`` seeds, every script in turn."""
    for seed in range(count):
        script = scripts.SCRIPTS[seed % len(scripts.SCRIPTS)]
        yield seed, script, plan_execution(random.Random(seed), script)


def first_plan(predicate) -> tuple[int, scripts.Script]:
    for seed, script, plan in seeded_plans():
        if predicate(plan):
            return seed, script
    pytest.fail("no seeded plan has the behaviour")


def play(root: Path, seed: int, script: scripts.Script) -> str:
    """Play the plan drawn from ``seed`` through the service with no waits (the delays it
    yields are skipped); returns the execution id."""
    conn = open_store(root)
    try:
        engine = Engine(root, conn, rng=random.Random(seed))
        service = _Service(engine, random.Random(seed), 1.0, root.parent / "work")
        rng = random.Random(seed)
        plan = plan_execution(rng, script)
        service.active = 1
        execution = service.execution(plan, rng)
        next(execution)  # the pending row is saved
        (execution_id,) = engine.runs
        for _delay in execution:
            pass
        return execution_id
    finally:
        conn.close()


def critical(step) -> bool:
    return "stop_on_error=true" in step.spec.params


BEHAVIOURS = {
    "late first marker": lambda p: p.first_marker_delay >= 3,
    "implicit end by the next STEP_START": lambda p: any(s.implicit_end for s in p.steps[:-1]),
    "cancel": lambda p: p.ending == "cancel" and not critical(p.steps[-1]),
    "cancel in a stop_on_error step": lambda p: p.ending == "cancel" and critical(p.steps[-1]),
    "timeout": lambda p: p.ending == "timeout" and not critical(p.steps[-1]),
    "crash without STEP_ERROR": lambda p: (p.ending == "exit" and p.exit_code != 0
                                           and p.steps[-1].implicit_end),
    "optional step fails, run goes on": lambda p: any(
        s.fails and not s.spec.failure.fatal for s in p.steps),
    "fatal STEP_ERROR": lambda p: p.steps[-1].fails and p.steps[-1].spec.failure.fatal,
}


def test_seeded_plans_cover_every_behaviour_of_the_real_service():
    found = {name: first_plan(predicate) for name, predicate in BEHAVIOURS.items()}
    assert len(found) == len(BEHAVIOURS)


def test_played_plans_store_what_the_real_service_stores(tmp_path):
    root = tmp_path / "store"
    played = [play(root, seed, script) for seed, script, _plan in seeded_plans(120)]
    assert check_finished_executions(root) == len(played) == 120
    check_artifacts(root)
    statuses = {row for row in query(root, "SELECT status, exit_code FROM executions")}
    assert {("completed", 0), ("failed", -15), ("failed", -1)} <= statuses
    assert query(root, "SELECT count(*) FROM executions WHERE status = 'cancelled'") == [(0,)]


def steps_of(root: Path, execution_id: str) -> list[tuple]:
    return query(root, "SELECT name, status, exit_code, error_message FROM steps"
                       " WHERE execution_id = ? ORDER BY step_index", (execution_id,))


def execution_row(root: Path, execution_id: str) -> tuple:
    (row,) = query(root, "SELECT status, exit_code, error_message, completed_steps, total_steps"
                         " FROM executions WHERE id = ?", (execution_id,))
    return row


def test_a_cancel_is_stored_failed_with_exit_code_minus_15(tmp_path):
    execution_id = play(tmp_path / "s", *first_plan(BEHAVIOURS["cancel"]))
    status, code, error, _done, total = execution_row(tmp_path / "s", execution_id)
    assert (status, code, error) == ("failed", -15, None)
    assert steps_of(tmp_path / "s", execution_id)[-1][1:3] == ("running", None)


def test_a_cancel_in_a_stop_on_error_step_is_stored_as_that_step_failing(tmp_path):
    execution_id = play(tmp_path / "s", *first_plan(BEHAVIOURS["cancel in a stop_on_error step"]))
    status, code, error, _done, _total = execution_row(tmp_path / "s", execution_id)
    last = steps_of(tmp_path / "s", execution_id)[-1]
    assert (status, code) == ("failed", 1)
    assert error == f"Critical step failed with exit code -15: {last[0]}"
    assert last[1] == "running"


def test_a_timeout_is_stored_failed_with_exit_code_minus_1(tmp_path):
    execution_id = play(tmp_path / "s", *first_plan(BEHAVIOURS["timeout"]))
    assert execution_row(tmp_path / "s", execution_id)[:3] == ("failed", -1, "Execution timed out")
    assert steps_of(tmp_path / "s", execution_id)[-1][1] == "running"


def test_a_step_ended_by_the_next_step_start_stays_running(tmp_path):
    seed, script = first_plan(lambda p: BEHAVIOURS["implicit end by the next STEP_START"](p)
                              and p.ending == "exit" and p.exit_code == 0)
    execution_id = play(tmp_path / "s", seed, script)
    status, code, _error, done, total = execution_row(tmp_path / "s", execution_id)
    steps = steps_of(tmp_path / "s", execution_id)
    assert (status, code) == ("completed", 0)
    assert "running" in [s[1] for s in steps[:-1]]
    assert total == len(steps) and done == sum(s[1] == "completed" for s in steps) < total


def test_a_crash_leaves_its_last_step_running_inside_a_failed_execution(tmp_path):
    seed, script = first_plan(lambda p: BEHAVIOURS["crash without STEP_ERROR"](p)
                              and not critical(p.steps[-1]))
    execution_id = play(tmp_path / "s", seed, script)
    status, code, error, _done, _total = execution_row(tmp_path / "s", execution_id)
    assert status == "failed" and code in (1, 2, 137) and error is None
    assert steps_of(tmp_path / "s", execution_id)[-1][1] == "running"


# ----------------------------------------------------------------------------- demo stores only


def test_the_demo_writer_refuses_a_store_it_did_not_create(fixture_store):
    database = fixture_store / "database" / "stepflow.db"
    before = database.read_bytes()
    for target in (fixture_store, fixture_store / "database"):
        result = subprocess.run(
            [sys.executable, "-m", "stepflow_top", "--demo-writer", str(target),
             "--seconds", "1"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "did not create" in lines[0], result.stderr
        assert not (target / MARKER_NAME).exists()
    assert database.read_bytes() == before
    assert not (fixture_store / "database" / "stepflow.db-wal").exists()
    assert not (fixture_store / "database" / "database").exists()
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
