"""Plans of the demo's runs, played through the simulated service with no waits: each
behaviour of the real StepFlow Monitor service (implicit step ends, cancels, timeouts,
crashes, late first markers, optional failures) must come up, and be stored as the
real service stores it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from stepflow_top.demo import scripts
from stepflow_top.demo.catalogue import plan_execution
from stepflow_top.demo.engine import Engine
from stepflow_top.demo.service import _Service
from stepflow_top.demo.store import open_store
from store_checks import check_artifacts, check_finished_executions, query


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
    "implicit end by the exit": lambda p: (p.ending == "exit" and p.exit_code == 0
                                           and p.steps[-1].implicit_end),
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
