"""Fitting the terminal (issue 9): the health screen at 60x20, paths cut in the
middle, artifacts' paths, the theme that sticks. Pilot tests on the fixture store."""

from __future__ import annotations

import pytest
from conftest import until
from stepflow_top.formatting import cut_middle
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.health import HealthScreen
from stepflow_top.ui.widgets import KeyedTable, StoreBar


@pytest.mark.parametrize(("value", "width", "expected"), [
    ("/srv/stepflow/database/stepflow.db", 40, "/srv/stepflow/database/stepflow.db"),
    ("/srv/stepflow/database/stepflow.db", 34, "/srv/stepflow/database/stepflow.db"),
    ("/srv/stepflow/database/stepflow.db", 20, "/srv/step…tepflow.db"),
    ("/srv/stepflow/database/stepflow.db", 2, "…b"),
    ("/srv/stepflow/database/stepflow.db", 1, "…"),
    ("/srv/stepflow/database/stepflow.db", 0, ""),
    (None, 5, ""),
])
def test_cut_middle_keeps_both_ends(value, width, expected):
    assert cut_middle(value, width) == expected
    assert len(cut_middle(value, width)) <= max(width, 0)


async def test_health_at_60x20_is_one_column_that_scrolls_to_the_history(fixture_store):
    app = StepflowTop(locate_store(fixture_store), watch=False)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.press("2")
        screen = await until(pilot, lambda: isinstance(app.screen, HealthScreen) and app.screen)
        await until(pilot, lambda: app.health is not None and screen.has_class("compact"))
        await pilot.pause()
        wal, db = screen.query_one("#wal-figures"), screen.query_one("#db-figures")
        assert db.region.y > wal.region.y and db.region.x == wal.region.x  # stacked
        footer = screen.query_one("Footer")
        assert footer.region.bottom == 20
        help_key = next(k for k in footer.query("FooterKey") if k.description == "Help")
        assert help_key.region.right <= 60 and help_key.region.width > 0
        await pilot.press("h")
        await pilot.pause()
        history = screen.query_one("#history-table", KeyedTable)
        assert screen.scrollable_content_region.contains_point(history.region.offset)
        assert screen.query_one(StoreBar).region.y == 0  # the bar stays on top
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: not screen.has_class("compact"))


async def test_store_bar_cuts_the_path_in_the_middle(fixture_store):
    app = StepflowTop(locate_store(fixture_store), watch=False)
    async with app.run_test(size=(60, 20)) as pilot:
        bar = await until(pilot, lambda: app.snapshot and app.screen.query_one(StoreBar))
        await pilot.pause()
        first = str(bar.render()).splitlines()[0]
        assert "…" in first and first.rstrip().endswith("stepflow.db")
        await pilot.resize_terminal(200, 20)
        await until(pilot, lambda: str(app.paths.database) in str(bar.render()))
