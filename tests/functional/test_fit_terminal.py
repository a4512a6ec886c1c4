"""Fitting the terminal (issue 9): the health screen at 60x20, paths cut in the
middle, artifacts' paths, the theme that sticks. Pilot tests on the fixture store."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from conftest import until
from stepflow_top.formatting import cut_middle
from stepflow_top.live.settings import Settings
from stepflow_top.live.state import settings_path
from stepflow_top.store.locate import locate_store
from stepflow_top.store.models import Artifact
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.health import HealthScreen
from stepflow_top.ui.widgets import KeyedTable, StoreBar, TextPanel


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
        first = await until(pilot, lambda: "…" in str(bar.render())
                            and str(bar.render()).splitlines()[0])
        assert first.rstrip().endswith("stepflow.db")
        await pilot.resize_terminal(200, 20)
        await until(pilot, lambda: str(app.paths.database) in str(bar.render()))


SHELL_BUILD = "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26"


def artifact(path: str) -> Artifact:
    return Artifact(id="a1", execution_id="e1", name="report", file_path=path)


def test_a_relative_artifact_path_is_resolved_against_the_working_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.html").write_text("<p>")
    found = artifact("out/report.html").resolved(str(tmp_path))
    assert found.file_path == str(tmp_path / "out" / "report.html")
    assert found.exists and found.stored_path == "out/report.html"
    missing = artifact("./gone.csv").resolved(str(tmp_path))
    assert missing.file_path == str(tmp_path / "gone.csv") and not missing.exists
    for kept in (artifact("/abs/x.csv").resolved(str(tmp_path)),
                 artifact("x.csv").resolved(None), artifact("x.csv").resolved("rel/dir"),
                 artifact("").resolved(str(tmp_path))):
        assert kept.stored_path is None


async def test_enter_on_an_artifact_shows_its_whole_path_and_whether_it_exists(
        fixture_store, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "model.pkl").write_bytes(b"\x80")
    with closing(sqlite3.connect(fixture_store / "database" / "stepflow.db")) as db, db:
        # The fixture's paths are absolute; make the service's cwd ours and two relative.
        db.execute("UPDATE executions SET working_directory = ?", [str(workdir)])
        db.execute("UPDATE artifacts SET file_path = 'model.pkl' "
                   "WHERE file_path = '/workspace/model.pkl'")
        db.execute("UPDATE artifacts SET file_path = 'out/training.log' "
                   "WHERE file_path = '/workspace/training.log'")
    app = StepflowTop(locate_store(fixture_store), watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.snapshot is not None)
        app.push_screen(DetailScreen(SHELL_BUILD))
        table = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and (
            t := app.screen.query_one("#artifacts-table", KeyedTable)).row_count == 4 and t)
        await pilot.press("a")
        panel = app.screen.query_one("#artifact-details", TextPanel)
        shown = {}
        for row in range(4):
            table.move_cursor(row=row)
            await pilot.press("enter")
            await pilot.pause()
            shown[str(table.get_cell_at((row, 0)))] = str(panel.render())
        pkl = next(v for v in shown.values() if "model.pkl" in v)
        assert str(workdir / "model.pkl") in pkl and "✓ the file exists" in pkl
        assert "stored as model.pkl" in pkl
        log = next(v for v in shown.values() if "training.log" in v)
        assert str(workdir / "out" / "training.log") in log and "✗ no file" in log
        absolute = next(v for v in shown.values() if "evaluation_report.html" in v)
        assert "/workspace/evaluation_report.html" in absolute and "stored as" not in absolute


async def test_the_chosen_theme_sticks_between_sessions(fixture_store):
    async with (app := StepflowTop(locate_store(fixture_store), watch=False)).run_test() as pilot:
        default = app.theme
        chosen = next(name for name in app.available_themes if name != default)
        app.theme = chosen  # what ctrl+p → theme does
        await pilot.pause()
    assert Settings.load().theme == chosen
    async with (app := StepflowTop(locate_store(fixture_store), watch=False)).run_test() as pilot:
        await pilot.pause()
        assert app.theme == chosen


async def test_a_theme_that_no_longer_exists_gives_the_default(fixture_store):
    Settings(theme="gone-theme").save()
    async with (app := StepflowTop(locate_store(fixture_store), watch=False)).run_test() as pilot:
        await pilot.pause()
        assert app.theme in app.available_themes and app.theme != "gone-theme"
    settings_path().write_text('{"sort": "name", "theme": 3}')  # not a name: the defaults
    assert Settings.load() == Settings()


@pytest.mark.parametrize("width", [80, 120])
async def test_the_exit_column_stays_on_screen(fixture_store, width):
    import sqlite3

    from conftest import FROZEN_NOW, until
    from stepflow_top.store.locate import locate_store
    from stepflow_top.ui.app import StepflowTop
    from stepflow_top.ui.widgets import KeyedTable

    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET status='failed', exit_code=-15, "
                     "completed_at=created_at, created_at='2026-11-20T10:00:00' "
                     "WHERE name='nightly-etl'")  # a cancel, on an older day (a date shows)
    conn.close()
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(width, 24)) as pilot:
        table = await until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 3
                            and app.screen.query_one(KeyedTable))
        await pilot.pause()
        used = sum(c.get_render_width(table) for c in table.columns.values())
        assert used <= table.scrollable_content_region.width, (used, table.size.width)
        assert str(table.get_cell(next(k for k in table.rows if str(
            table.get_cell(k, "name")).startswith("nigh")), "exit")) == "-15"
