"""The executions list under a live service: it never grows by itself, lost runs are
shown as such, and the store bar says who writes the store."""

from __future__ import annotations

import pytest
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop

from service_writer import ServiceWriter
from test_app import table, until


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
            await until(pilot, lambda: table(app).get_row_index(key) == 46 + n
                        if key in table(app).rows else False)
        assert table(app).cursor_key == key  # the cursor stayed on its run
        assert app.request.limit == 50 and table(app).row_count == 50
        await pilot.press("down", "down")  # the reader's own move does load more
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
