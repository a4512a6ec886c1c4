"""The executions list under a live service: it never grows by itself, lost runs are
shown as such, and the store bar says who writes the store."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import until
from service_writer import ServiceWriter
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from test_app import table


@pytest.fixture
def busy_store(tmp_path):
    """A store with 60 finished runs and its service still attached."""
    service = ServiceWriter(tmp_path / "storage")
    for n in range(60):
        run = service.start(f"old-{n:02d}")
        service.cmd("finish", run, "completed")
    yield service
    service.close()


async def test_new_runs_pushing_the_cursor_down_never_load_more(busy_store, tmp_path):
    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 50)
        for _ in range(45):  # the reader parks the cursor low in the page
            await pilot.press("down")
        key = table(app).cursor_key
        assert app.request.limit == 50
        for n in range(3):  # new runs arrive above, one commit each
            busy_store.start(f"new-{n}")
            await until(pilot, lambda n=n: table(app).get_row_index(key) == 46 + n
                        if key in table(app).rows else False)
        assert table(app).cursor_key == key  # the cursor stayed on its run
        assert app.request.limit == 50 and table(app).row_count == 50
        for n in range(3, 8):  # until the run under the cursor leaves the window
            newest = busy_store.start(f"new-{n}")
            await until(pilot, lambda newest=newest: newest in table(app).rows)
        assert key not in table(app).rows
        await pilot.pause(0.3)  # any queued highlight has been handled
        assert app.request.limit == 50 and table(app).row_count == 50
        await pilot.press("up", "down", "down", "down")  # the reader's own move loads more
        await until(pilot, lambda: app.request.limit == 100)


async def test_a_killed_service_turns_runs_lost_on_screen_and_in_the_bar(tmp_path):
    service = ServiceWriter(tmp_path / "storage")
    run = service.start("etl")
    service.step(run, "Extract")
    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 1)
        bar = app.screen.query_one("StoreBar")
        await until(pilot, lambda: f"service: pid {service.pid}" in str(bar.render()))
        assert "running" in str(table(app).get_cell(run, "status"))
        service.kill()
        await until(pilot, lambda: "◌ lost" in str(table(app).get_cell(run, "status")))
        await until(pilot, lambda: "no service has the database open" in str(bar.render()))
        assert "◌ lost 1" in str(bar.render())


async def test_a_tick_repaints_only_the_running_steps_of_a_huge_execution(tmp_path, monkeypatch):
    import sqlite3

    from stepflow_top.ui.screens.detail import DetailScreen

    service = ServiceWriter(tmp_path / "storage")
    run = service.start("huge")
    last, _ = service.step(run, "step-0")  # running, while the service stays attached
    with sqlite3.connect(tmp_path / "storage" / "database" / "stepflow.db") as conn:
        conn.executemany(
            "INSERT INTO steps (id, execution_id, name, step_index, status, created_at, "
            "started_at, completed_at) SELECT ?, execution_id, ?, ?, 'completed', created_at, "
            "started_at, started_at FROM steps WHERE id = ?",
            [(f"bulk-{i}", f"bulk-{i}", i - 10_000, last) for i in range(1, 10_000)])
    conn.close()
    painted: list[str] = []
    original = DetailScreen._step_cells
    monkeypatch.setattr(DetailScreen, "_step_cells", lambda self, view, now: (
        painted.append(view.step.id), original(self, view, now))[1])
    app = StepflowTop(locate_store(tmp_path / "storage"), watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(DetailScreen(run))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                    and table(app, "#steps-table").row_count == 10_000)
        painted.clear()
        app.now = app.clock()  # one tick of the clock
        await pilot.pause()
        assert set(painted) == {last}  # the one running step, not 10 000 rows
    service.close()


async def test_a_cancelled_check_is_cancelled_never_a_problem(tmp_path):
    from stepflow_top.demo.bulk import populate
    from stepflow_top.ui.screens.health import HealthScreen
    from stepflow_top.wal.results import State

    populate(tmp_path / "big", executions=30_000)
    app = StepflowTop(locate_store(tmp_path / "big"), watch=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, HealthScreen))
        # I then x, with no pause between them (the pilot would wait for the check).
        app.screen.action_check("full")
        app.screen.action_cancel_check()
        await until(pilot, lambda: app.integrity is not None)
        assert app.integrity.state is State.CANCELLED
        state = str(app.screen.query_one("#check-state").render())
        assert "⊘ cancelled" in state and "problems" not in state
        assert [n.message for n in app._notifications] == ["check cancelled"]


async def test_the_log_screen_follows_the_run_to_its_next_step(tmp_path):
    from stepflow_top.ui.screens.log import LogScreen

    service = ServiceWriter(tmp_path / "storage")
    run = service.start("etl")
    first, _ = service.step(run, "Extract")
    service.cmd("log", run, "extracting")
    # Opening the log screen re-registers the file watcher; a commit in that gap is
    # seen by the fallback timer, so keep it short here.
    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=1)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 1)
        await pilot.press("enter")
        await until(pilot, lambda: table(app, "#steps-table").row_count == 1)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen)
        assert screen.step.id == first
        second, _ = service.step(run, "Transform")  # the service moves on
        await until(pilot, lambda: screen.step.id == second)
        assert "Transform" in str(screen.query_one("#step-summary").render())
        await pilot.press("F")  # follow off: the screen stays on its step
        assert screen.view.follow is False
        third, _ = service.step(run, "Load")
        await until(pilot, lambda: app.snapshot.detail is not None
                    and any(s.id == third for s in app.snapshot.detail.steps))
        await pilot.pause(0.2)
        assert screen.step.id == second
    service.close()


async def test_pause_freezes_running_durations_until_resumed(tmp_path):
    service = ServiceWriter(tmp_path / "storage")
    run = service.start("etl")
    service.step(run, "Extract")
    later = [0.0]  # seconds the test moves the app's clock on

    def clock():
        return datetime.now() + timedelta(seconds=later[0])

    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30, clock=clock)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            duration = lambda: str(table(app).get_cell(run, "duration"))  # noqa: E731
            await until(pilot, lambda: table(app).row_count == 1)
            assert "running" in str(table(app).get_cell(run, "status"))
            later[0] = 600
            await until(pilot, lambda: duration().startswith("10m"))  # it ticks
            await pilot.press("p")
            frozen = duration()
            later[0] = 3600
            # No event marks a tick that changed nothing; ticks come every second.
            await pilot.pause(1.5)
            assert duration() == frozen
            await pilot.press("p")
            await until(pilot, lambda: duration().startswith("1h"))
    finally:
        service.close()


async def test_durations_tick_while_a_slow_refresh_is_on_its_way(tmp_path):
    """A tick waits for a refresh on its way (both are drawn in one frame), but never
    twice in a row: a refresh that takes seconds does not stop the clock."""
    import time

    from stepflow_top.live.refresher import Refresher

    class SlowRefresher(Refresher):
        slow = False

        def refresh(self, *args, **kwargs):
            if self.slow:
                time.sleep(4.0)  # a query that takes seconds, in the refresh worker
            return super().refresh(*args, **kwargs)

    service = ServiceWriter(tmp_path / "storage")
    run = service.start("etl")
    service.step(run, "Extract")
    later = [0.0]

    def clock():
        return datetime.now() + timedelta(seconds=later[0])

    paths = locate_store(tmp_path / "storage")
    refresher = SlowRefresher(paths)
    app = StepflowTop(paths, refresher=refresher, fallback=30, clock=clock)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            duration = lambda: str(table(app).get_cell(run, "duration"))  # noqa: E731
            await until(pilot, lambda: table(app).row_count == 1)
            refresher.slow = True
            app.request_refresh(force=True)
            await until(pilot, lambda: app.scheduler.running)
            later[0] = 600
            await until(pilot, lambda: duration().startswith("10m"))
            assert app.scheduler.running  # the slow refresh has not come back yet
    finally:
        service.close()
