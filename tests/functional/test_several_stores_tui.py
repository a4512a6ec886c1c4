"""The monitor over several stores (issue 10, "Several stores"), driven with Textual's
pilot: each live store has its own service writer in a separate process
(tests/service_writer.py), and what is asserted is what the widgets hold."""

from __future__ import annotations


import pytest
from conftest import FIXTURE, FROZEN_NOW, copy_store, until
from service_writer import ServiceWriter
from stepflow_top.live.stores import row_key
from stepflow_top.store.locate import locate_stores
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.log import LogScreen
from stepflow_top.ui.widgets.log_view import LogView
from stepflow_top.ui.several import SeveralStoresTop
from stepflow_top.ui.widgets import KeyedTable, StoreBar

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
NIGHTLY_STEP_0 = "step_0_03610f8c-4e5f-4950-bc88-11ca83df76c2.log"


def table(app, selector: str = "#executions") -> KeyedTable:
    return app.screen.query_one(selector, KeyedTable)


def keys(app) -> list[str]:
    """Row keys in the order shown."""
    return [row.key.value for row in table(app).ordered_rows]


def status(app, key: str) -> str:
    return str(table(app).get_cell(key, "status"))


def bar(app) -> str:
    return str(app.screen.query_one(StoreBar).render())


def bar_line(app, index: int) -> str:
    """Line ``index`` of the store bar ("" while the bar has fewer: it draws once the
    messages of a refresh are handled)."""
    lines = bar(app).splitlines()
    return lines[index] if index < len(lines) else ""


@pytest.fixture
def services(tmp_path):
    """Two live stores, ``prod`` and ``staging``, each with its own service process."""
    started = {name: ServiceWriter(tmp_path / name) for name in ("prod", "staging")}
    yield started
    for service in started.values():
        service.close()


@pytest.fixture
def copies(tmp_path) -> list[str]:
    """Two copies of the fixture (the same execution ids in both), the second named
    ``night``; its log of the nightly run's first step says so."""
    copy_store(FIXTURE, tmp_path / "day")
    copy_store(FIXTURE, tmp_path / "second")
    log = tmp_path / "second" / "executions" / NIGHTLY / NIGHTLY_STEP_0
    log.write_text("this line is in the night store only\n")
    return [str(tmp_path / "day"), f"night={tmp_path / 'second'}"]


def frozen_app(given: list[str]) -> SeveralStoresTop:
    return SeveralStoresTop(locate_stores(given), clock=lambda: FROZEN_NOW, watch=False,
                            persist_history=False)


async def test_two_live_stores_merge_and_a_dead_service_loses_only_its_runs(services,
                                                                             tmp_path):
    prod, staging = services["prod"], services["staging"]
    in_prod, in_staging = prod.start("deploy"), staging.start("smoke-tests")
    prod.step(in_prod, "Build")
    staging.step(in_staging, "Run")
    app = SeveralStoresTop(locate_stores([str(tmp_path / "prod"), str(tmp_path / "staging")]),
                           fallback=1.0, persist_history=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        both = {row_key("prod", in_prod), row_key("staging", in_staging)}
        await until(pilot, lambda: both <= set(keys(app)))
        assert {str(table(app).get_cell(k, "store")) for k in both} == {"prod", "staging"}
        assert status(app, row_key("prod", in_prod)).startswith("● running")
        newer = staging.start("newest-run")  # newest first across the stores
        await until(pilot, lambda: keys(app)[:1] == [row_key("staging", newer)])
        staging.cmd("finish", newer, "failed")
        await until(pilot, lambda: any(n.message == "staging: newest-run failed"
                                       for n in app._notifications))

        prod.kill()  # SIGKILL: prod's rows stay "running" with no service behind them
        await until(pilot, lambda: "lost" in status(app, row_key("prod", in_prod)))
        assert status(app, row_key("staging", in_staging)).startswith("● running")
        await until(pilot, lambda: "no service" in bar_line(app, 1))
        assert "no service" not in bar_line(app, 2)


async def test_a_store_missing_at_start_is_shown_so_and_joins_when_it_appears(services,
                                                                               tmp_path):
    prod = services["prod"]
    in_prod = prod.start("deploy")
    later = tmp_path / "later"
    app = SeveralStoresTop(locate_stores([str(tmp_path / "prod"), str(later)]),
                           fallback=1.0, persist_history=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row_key("prod", in_prod) in keys(app))
        await until(pilot, lambda: "NO DATA" in bar_line(app, 2))
        assert "● LIVE" in bar(app).splitlines()[0]

        service = ServiceWriter(later)
        try:
            in_later = service.start("first-run")
            await until(pilot, lambda: row_key("later", in_later) in keys(app))
            await until(pilot, lambda: "NO DATA" not in bar(app))
        finally:
            service.close()


async def test_the_store_filter_keeps_one_store(copies):
    app = frozen_app(copies)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        app.set_request(text="store:night")
        await until(pilot, lambda: table(app).row_count == 3)
        assert all(k.startswith("night/") for k in keys(app))
        app.set_request(text="store:night store:day nightly")
        await until(pilot, lambda: sorted(keys(app)) == [row_key("day", NIGHTLY),
                                                         row_key("night", NIGHTLY)])


async def test_a_run_of_the_second_store_opens_its_detail_and_its_own_log(copies):
    app = frozen_app(copies)
    async with app.run_test(size=(120, 40)) as pilot:
        key = row_key("night", NIGHTLY)
        await until(pilot, lambda: key in keys(app))
        table(app).move_cursor(row=table(app).get_row_index(key))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                    and table(app, "#steps-table").row_count == 5)
        assert app.paths.label == "night"
        await until(pilot, lambda: bar_line(app, 2).startswith("night"))
        night_line = app.screen.query_one(StoreBar).render().split("\n")[2]
        assert night_line.plain.startswith("night") and night_line.spans[0].style.reverse
        table(app, "#steps-table").move_cursor(row=0)
        await pilot.press("enter")
        view = await until(pilot, lambda: isinstance(app.screen, LogScreen)
                           and app.screen.query_one(LogView))
        await until(pilot, lambda: view.lines)
        assert any("this line is in the night store only" in line for line in view.lines)


@pytest.mark.parametrize(("size", "per_store_lines"), [((80, 24), False), ((120, 40), True)])
async def test_the_store_bar_fits_the_terminal(copies, tmp_path, size, per_store_lines):
    app = frozen_app([*copies, f"gone={tmp_path / 'gone'}"])
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await until(pilot, lambda: ("2 of 3 stores live" if per_store_lines else "2/3 stores")
                    in bar_line(app, 0))
        lines = bar(app).splitlines()
        if per_store_lines:
            assert [line.split()[0] for line in lines[1:4]] == ["day", "night", "gone"]
            assert "NO DATA" in lines[3]
        else:
            assert len(lines) == 2
            assert all(len(line) <= size[0] - 2 for line in lines), lines
            assert "gone ✗ no data" in lines[1] and lines[1].startswith("day ")
        assert table(app).get_row_at(0)[0].plain in ("day", "night")
        # The Store column never pushes Exit off screen: at 80 columns it takes the
        # User column's room (the list of one store keeps its users).
        shown = table(app)
        await until(pilot, lambda: sum(c.get_render_width(shown) for c in shown.columns.values())
                    <= shown.scrollable_content_region.width)
        labelled = {c.key.value for c in shown.columns.values() if str(c.label)}
        assert ("user" in labelled) == per_store_lines


async def test_the_command_palette_names_the_store_and_opens_its_run(copies):
    from textual.command import CommandPalette

    app = frozen_app(copies)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"night: nightly")

        def first_hit() -> str:
            hits = app.screen.query_one("CommandList")
            return str(hits.get_option_at_index(0).prompt) if hits.option_count else ""

        await until(pilot, lambda: "open night: nightly-etl" in first_hit())
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                    and app.screen.execution_id == row_key("night", NIGHTLY))


async def test_the_health_screen_has_a_tab_per_store(copies, tmp_path):
    from stepflow_top.ui.screens.health import HealthScreen
    from stepflow_top.ui.screens.help import active_keys
    from textual.widgets import Tabs

    app = frozen_app(copies)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("2")
        tabs = await until(pilot, lambda: isinstance(app.screen, HealthScreen)
                           and app.screen.query_one("#stores", Tabs))
        assert [str(t.label) for t in tabs.query("Tab")] == ["day", "night"]
        assert tabs.active == "store-0" and app.paths.label == "day"
        assert ("]", "Next store") in [k for _, keys in active_keys(app.screen) for k in keys]
        await pilot.press("c")  # quick_check of day
        day_report = await until(pilot, lambda: app.integrity)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: tabs.active == "store-1")
        assert app.paths.root == tmp_path / "second"  # its checks run on that store
        assert len(app.healths) == 2 and app.health is app.healths[1]
        assert app.integrity is None  # night has not been checked
        await pilot.click("#store-0")  # a click on a tab shows its store
        await until(pilot, lambda: app.paths.label == "day")
        assert tabs.active == "store-0" and app.integrity is day_report
