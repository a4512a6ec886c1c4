"""Issue 9's last items, driven through the app: the executions list uses a wide
terminal (error messages, then tags) and keeps Exit on screen at every width; step
progress, description and estimate from META: markers in the detail's steps table, the
log header and the list's current step cell."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from conftest import FROZEN_NOW, until
from service_writer import ServiceWriter
from stepflow_top.store.locate import locate_store
from stepflow_top.store.models import Execution, Status
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.executions import ExecutionsScreen
from stepflow_top.ui.screens.log import LogScreen
from stepflow_top.ui.widgets import KeyedTable, TextPanel

MESSAGE = "Critical step failed: Model Evaluation - accuracy 0.71 below the 0.80 threshold"


@pytest.fixture
def failed_store(fixture_store):
    """The fixture with nightly-etl cancelled (-15, no message, tagged) and shell-build
    failed with the message a stop_on_error step leaves."""
    with closing(sqlite3.connect(fixture_store / "database" / "stepflow.db")) as db, db:
        db.execute("UPDATE executions SET status='failed', exit_code=-15, "
                   "tags='[\"etl\", \"nightly\"]' WHERE name='nightly-etl'")
        db.execute("UPDATE executions SET status='failed', exit_code=1, error_message=?, "
                   "tags='not json' WHERE name='shell-build'", [MESSAGE])
    return fixture_store


def text(table: KeyedTable, name: str, column: str) -> str:
    row = next(k for k in table.rows if str(table.get_cell(k, "name")).startswith(name[:6]))
    return str(table.get_cell(row, column))


async def loaded(pilot, app) -> KeyedTable:
    table = await until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 3
                        and app.screen.query_one(KeyedTable))
    await pilot.pause()
    return table


def assert_on_screen(table: KeyedTable) -> None:
    used = sum(c.get_render_width(table) for c in table.columns.values())
    assert used <= table.scrollable_content_region.width, used
    assert text(table, "nightly-etl", "exit") == "-15"


@pytest.mark.parametrize(("width", "wide"), [
    (80, []), (100, []), (120, ["error"]), (160, ["error", "tags"]), (200, ["error", "tags"]),
])
async def test_wide_windows_show_error_messages_then_tags(failed_store, width, wide):
    app = StepflowTop(locate_store(failed_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(width, 24)) as pilot:
        table = await loaded(pilot, app)
        keys = [c.key.value for c in table.columns.values()]
        assert keys[keys.index("exit") + 1:] == wide  # after Exit, in this order
        assert_on_screen(table)
        if width >= 100:  # names whole, then current steps, before any error message
            assert text(table, "data-report", "name") == "data-report"
            assert text(table, "shell-build", "current") == "Model Evaluation"
        if "error" in wide:
            shown = text(table, "shell-build", "error")
            assert shown.endswith("…") and MESSAGE.startswith(shown[:-1])
            if width == 200:  # what short names leave over goes to the message
                assert len(shown) > 70
            assert text(table, "nightly-etl", "error").startswith("cancelled, last")
            assert text(table, "data-report", "error") == ""
        if "tags" in wide:
            assert text(table, "nightly-etl", "tags") == "etl, nightly"
            assert text(table, "shell-build", "tags") == "not json"  # as stored


async def test_columns_follow_every_resize(failed_store):
    app = StepflowTop(locate_store(failed_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(200, 24)) as pilot:
        table = await loaded(pilot, app)
        for width, last in ((80, "exit"), (120, "error"), (100, "exit"), (200, "tags"),
                            (130, "error")):
            await pilot.resize_terminal(width, 24)
            await until(pilot, lambda last=last: list(table.columns)[-1].value == last)
            await pilot.pause()
            assert_on_screen(table)
            row = next(iter(table.rows))
            assert len(table.get_row(row)) == len(table.columns)


async def test_the_current_step_cell_shows_progress_when_there_is_room(fixture_store):
    running = Execution(id="e", name="etl", stored_status="pending", running_step="Extract",
                        running_metadata='{"PROGRESS": " 40%"}')
    odd = Execution(id="f", name="etl", stored_status="pending", running_step="Extract",
                    running_metadata='{"PROGRESS": "soon"}')
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 24)) as pilot:
        screen = await until(pilot, lambda: isinstance(app.screen, ExecutionsScreen)
                             and app.screen)
        await pilot.pause()
        assert str(screen._current_step(running, Status.RUNNING)) == "Extract 40%"
        assert str(screen._current_step(odd, Status.RUNNING)) == "Extract"  # no readable percent
        # A lost run's last percent would read as work going on.
        assert str(screen._current_step(running, Status.LOST)) == "Extract"
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: screen.fit.step == 4)
        assert str(screen._current_step(running, Status.RUNNING)) == "Ext…"  # no room: the name only


async def test_meta_markers_in_the_steps_table_and_the_log_header(tmp_path):
    service = ServiceWriter(tmp_path / "storage")
    try:
        run = service.start("etl")
        service.step(run, "Prepare")
        service.cmd("log", run, "preparing")
        step, _ = service.step(run, "Build [duration=120]")
        service.cmd("log", run, "compiling module 1 of 3")
        service.cmd("meta", step, '{"PROGRESS": "50", "DESCRIPTION": "Compiling 3 modules"}')
        app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30)
        async with app.run_test(size=(120, 30)) as pilot:
            runs = app.screen.query_one(KeyedTable)
            await until(pilot, lambda: runs.row_count == 1)
            await until(pilot, lambda: str(runs.get_cell(run, "current")) == "Build 50%")
            app.push_screen(DetailScreen(run))
            table = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and (
                t := app.screen.query_one("#steps-table", KeyedTable)).row_count == 2 and t)
            await until(pilot, lambda: str(table.get_cell(step, "progress")) == "██▌░░ 50%")
            assert " / ~2m" in str(table.get_cell(step, "duration"))  # [duration=120]
            prepare = next(k.value for k in table.rows if k.value != step)
            assert str(table.get_cell(prepare, "progress")) == ""
            assert " / " not in str(table.get_cell(prepare, "duration"))  # ended: its duration

            table.move_cursor(row=table.get_row_index(step))
            await pilot.press("enter")
            header = await until(pilot, lambda: isinstance(app.screen, LogScreen)
                                 and app.screen.query_one("#step-summary", TextPanel))
            shown = str(header.render())
            assert "Compiling 3 modules" in shown and "50%" in shown and "/ ~2m" in shown

            service.cmd("meta", step, '{"PROGRESS": "nearly", "ESTIMATED_DURATION": "a bit"}')
            await until(pilot, lambda: "nearly" in str(header.render()))
            assert "/ a bit" in str(header.render())  # what cannot be read, as stored
            await pilot.press("escape")
            await until(pilot, lambda: str(table.get_cell(step, "progress")) == "nearly")
            assert str(table.get_cell(step, "duration")).endswith("/ a bit")
    finally:
        service.close()


DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"


async def test_the_log_header_times_a_running_step_against_its_estimate(fixture_store,
                                                                        attached_service):
    """The fixture's running step Data Collection (META:ESTIMATED_DURATION:180) started
    at 19:56:01.4, its service attached (without one it is lost, and the header says
    so, as the detail screen does); the header's elapsed time moves with the app's
    clock."""
    with closing(sqlite3.connect(fixture_store / "database" / "stepflow.db")) as db, db:
        db.execute("UPDATE steps SET metadata=json_set(metadata, '$.PROGRESS', '30') "
                   "WHERE name='Data Collection'")
    now = [FROZEN_NOW]
    app = StepflowTop(locate_store(fixture_store), clock=lambda: now[0], watch=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None)
        app.push_screen(DetailScreen(DATA_REPORT))
        table = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and (
            t := app.screen.query_one("#steps-table", KeyedTable)).row_count == 2 and t)
        table.move_cursor(row=1)
        await pilot.press("enter")
        header = await until(pilot, lambda: isinstance(app.screen, LogScreen)
                             and app.screen.query_one("#step-summary", TextPanel))
        assert "30%  8.6s / ~3m" in str(header.render())
        now[0] = FROZEN_NOW.replace(minute=59)  # past the estimate
        await until(pilot, lambda: "3m08s / ~3m" in str(header.render()))
