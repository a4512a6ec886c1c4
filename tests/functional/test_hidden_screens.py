"""A screen under another one does no work (issue 8: cost follows the screen): the
executions list and its store bar skip snapshots while the detail screen is on top, and
catch up as soon as they are shown again."""

from __future__ import annotations

import sqlite3

from conftest import FROZEN_NOW, until
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.executions import ExecutionsScreen
from stepflow_top.ui.widgets import KeyedTable, StoreBar

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"


async def test_the_list_under_the_detail_screen_waits_and_catches_up(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False,
                      persist_history=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 3)
        listing = app.screen
        assert isinstance(listing, ExecutionsScreen)
        bar = listing.query_one(StoreBar)
        app.push_screen(DetailScreen(NIGHTLY))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
            conn.execute("DELETE FROM executions WHERE id != ?", [NIGHTLY])
        conn.close()
        app.action_refresh_now()
        await until(pilot, lambda: app.snapshot is not None
                    and len(app.snapshot.executions) == 1)
        await pilot.pause()
        assert listing.query_one(KeyedTable).row_count == 3  # not redrawn underneath
        assert "1 execution " not in str(bar.render())
        app.pop_screen()
        await until(pilot, lambda: app.screen is listing
                    and listing.query_one(KeyedTable).row_count == 1)
        assert "1 execution " in str(bar.render())
