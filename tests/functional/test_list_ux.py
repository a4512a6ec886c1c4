"""The executions list as a terminal tool: sorting in the database over the whole
store, filter qualifiers, and clock or relative times."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest
from conftest import FROZEN_NOW, until
from stepflow_top.store import filters, order
from stepflow_top.store.locate import locate_store
from stepflow_top.store.models import Judgement, Status
from stepflow_top.store.queries import StoreReader
from stepflow_top.ui.app import StepflowTop
from test_app import table


def add_runs(store, runs) -> None:
    """Insert finished executions (name, user, exit code, created_at, seconds, tags)."""
    with sqlite3.connect(store / "database" / "stepflow.db") as conn:
        for n, (name, user, code, created, seconds, tags) in enumerate(runs):
            end = created + timedelta(seconds=seconds)
            conn.execute(
                "INSERT INTO executions (id, name, command, status, exit_code, created_at, "
                "started_at, completed_at, user_name, tags) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (f"added-{name}-{n:04d}", name, f"run {name}", "completed" if code == 0 else "failed",
                 code, created.isoformat(), created.isoformat(), end.isoformat(), user, tags))
    conn.close()


# -- filters -------------------------------------------------------------------
def test_qualifiers_and_free_text_are_parsed():
    wanted = filters.parse("user:alice tag:nightly status:FAILED since:1h etl id:x", FROZEN_NOW)
    assert wanted.user == "alice" and wanted.tags == ("nightly",)
    assert wanted.status is Status.FAILED
    assert wanted.since == FROZEN_NOW - timedelta(hours=1)
    assert wanted.words == ("etl", "id:x")  # an unknown qualifier is text
    assert filters.parse("since:2026-11-30", FROZEN_NOW).since == datetime(2026, 11, 30)
    assert not filters.parse("  ", FROZEN_NOW)


@pytest.mark.parametrize("text, says", [
    ("status:done", "status:done is not a status"),
    ("since:yesterday", "since:yesterday is neither an age"),
    ("user:", "user: needs a value"),
    ("since:99999999999w", "neither an age"),
])
def test_a_qualifier_that_cannot_be_read_says_why_in_one_line(text, says):
    with pytest.raises(filters.FilterError, match=says) as caught:
        filters.parse(text, FROZEN_NOW)
    assert "\n" not in str(caught.value)


def test_qualifiers_select_in_the_database(fixture_store):
    add_runs(fixture_store, [
        ("tagged", "carol", 0, FROZEN_NOW - timedelta(days=3), 5, '["nightly", "db"]'),
        ("night_ly", "carol", 0, FROZEN_NOW - timedelta(days=3), 5, '["nightlyish"]'),
    ])
    reader = StoreReader(locate_store(fixture_store))
    judgement = Judgement(FROZEN_NOW, 300.0, False, None)
    with reader.session():
        def found(text):
            return sorted(e.name for e in reader.executions(judgement, text=text).executions)

        assert found("tag:nightly") == ["tagged"]  # a whole tag, not a part of one
        assert found("user:ALICE") == ["data-report", "nightly-etl"]
        assert found("since:1h") == ["data-report", "nightly-etl", "shell-build"]
        assert found("since:1h user:bob") == ["shell-build"]
        assert found("nightlyish") == ["night_ly"]  # free text reaches the tags
        assert found("status:failed") == []
        assert found("ly_") == []  # LIKE wildcards are literal


# -- sorting in the database -------------------------------------------------------
def test_sorts_order_the_whole_store_not_the_loaded_rows(fixture_store):
    old = FROZEN_NOW - timedelta(days=30)
    add_runs(fixture_store, [(f"zz-{n:03d}", "dave", 0, FROZEN_NOW - timedelta(hours=n), 60, "[]")
                             for n in range(1, 100)])
    add_runs(fixture_store, [("aaa-oldest", "aaron", 137, old, 86_400, "[]")])
    reader = StoreReader(locate_store(fixture_store))
    judgement = Judgement(FROZEN_NOW, 300.0, False, None)
    with reader.session():
        def first(sort, reverse=False, limit=3):
            window = reader.executions(judgement, limit=limit, sort=sort, reverse=reverse)
            return [e.name for e in window.executions]

        # The oldest row is far outside the newest 3, yet leads these orders.
        assert first("name")[0] == "aaa-oldest"
        assert first("user")[0] == "aaa-oldest"
        assert first("duration")[0] == "aaa-oldest"
        assert first("exit")[0] == "aaa-oldest"  # a failure before the zeros
        assert first("status")[0] == "data-report"  # live first
        assert first("started") == ["data-report", "shell-build", "nightly-etl"]
        assert first("started", reverse=True)[0] == "aaa-oldest"
        assert first("name", reverse=True)[0] == "zz-099"


def test_a_sort_stays_within_the_newest_rows(fixture_store, monkeypatch):
    import stepflow_top.store.queries as queries

    add_runs(fixture_store, [("aaa-oldest", "aaron", 0, FROZEN_NOW - timedelta(days=30), 1, "[]")])
    monkeypatch.setattr(queries, "SORT_SCOPE", 3)
    reader = StoreReader(locate_store(fixture_store))
    with reader.session():
        window = reader.executions(Judgement(FROZEN_NOW, 300.0, False, None), sort="name")
    assert [e.name for e in window.executions] == ["data-report", "nightly-etl", "shell-build"]
    assert window.sorted_scope == 3
    assert order.SORT_SCOPE == 10_000


# -- on screen ------------------------------------------------------------------
def header(app, key: str) -> str:
    return str(table(app).columns[key].label)


def shown(app) -> list[str]:
    t = table(app)
    return [str(t.get_row_at(i)[1]) for i in range(t.row_count)]


async def test_o_cycles_O_reverses_and_the_sort_sticks(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        assert header(app, "started") == "Started ▼"
        await pilot.press("o", "o")  # started → status → name
        await until(pilot, lambda: shown(app) == ["data-report", "nightly-etl", "shell-build"])
        assert header(app, "name") == "Name ▼" and header(app, "started") == "Started"
        await pilot.press("O")
        await until(pilot, lambda: shown(app) == ["shell-build", "nightly-etl", "data-report"])
        assert header(app, "name") == "Name ▲"
        assert "sort: name reversed" in str(app.screen.query_one("#view-state").render())

    again = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with again.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: shown(again) == ["shell-build", "nightly-etl", "data-report"])
        assert header(again, "name") == "Name ▲"


async def test_clicking_a_header_sorts_by_it_and_again_reverses(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        table(app).post_message(table(app).HeaderSelected(
            table(app), table(app).columns["user"].key, 2, table(app).columns["user"].label))
        await until(pilot, lambda: header(app, "user") == "User ▼")
        await until(pilot, lambda: shown(app)[-1] == "shell-build")  # alice, alice, bob
        table(app).post_message(table(app).HeaderSelected(
            table(app), table(app).columns["user"].key, 2, table(app).columns["user"].label))
        await until(pilot, lambda: shown(app)[0] == "shell-build")
        assert header(app, "user") == "User ▲"


async def test_filter_qualifiers_narrow_the_list_and_show_in_the_view_state(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.press("slash", *"user:bob")
        await until(pilot, lambda: shown(app) == ["shell-build"])
        state = app.screen.query_one("#view-state")
        assert "filter: user bob" in str(state.render())
        # A qualifier that cannot be read keeps the last good filter, and says why.
        app.screen.query_one("#filter").value = "user:bob status:nope"
        await until(pilot, lambda: "status:nope is not a status" in str(state.render()))
        assert shown(app) == ["shell-build"]
        await pilot.press("escape", "escape")
        await until(pilot, lambda: table(app).row_count == 3)
        assert "status:nope" not in str(state.render())


async def test_times_are_clock_times_today_dates_before_and_T_makes_them_relative(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        key = table(app).cursor_key  # data-report, started 19:55:59 on FROZEN_NOW's day
        assert str(table(app).get_cell(key, "started")) == "19:55:59"
        await pilot.press("T")
        await until(pilot, lambda: str(table(app).get_cell(key, "started")) == "10 seconds ago")

    tomorrow = FROZEN_NOW + timedelta(days=1)
    app = StepflowTop(locate_store(fixture_store), clock=lambda: tomorrow, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        assert str(table(app).get_cell(table(app).cursor_key, "started")) == "Nov 21 19:55"


async def test_the_view_state_says_when_a_sort_covers_only_the_newest_rows(
        fixture_store, monkeypatch):
    import stepflow_top.ui.screens.executions as executions

    monkeypatch.setattr(executions, "SORT_SCOPE", 2)  # the fixture's 3 rows are "many"
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        state = app.screen.query_one("#view-state")
        assert "sorted within" not in str(state.render())  # by started: the whole store
        await pilot.press("o")
        await until(pilot, lambda: "sorted within the newest 2" in str(state.render()))


def test_a_saved_sort_from_before_the_rename_still_loads(tmp_path):
    from stepflow_top.live.settings import Settings

    path = tmp_path / "settings.json"
    path.write_text('{"sort": "newest", "status": "failed"}')
    settings = Settings.load(path)
    assert (settings.sort, settings.sort_reverse, settings.status) == ("started", False, "failed")


async def test_a_new_view_starts_at_the_top_unless_the_selected_run_is_in_it(fixture_store):
    import sqlite3

    from conftest import FROZEN_NOW, until
    from stepflow_top.store.locate import locate_store
    from stepflow_top.ui.app import StepflowTop
    from stepflow_top.ui.widgets import KeyedTable

    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.executemany(
            "INSERT INTO executions (id, name, command, status, created_at) "
            "VALUES (?, ?, 'x', 'completed', ?)",
            [(f"extra-{n}", f"extra-{n}", f"2026-11-21T19:00:0{n}") for n in range(5)])
    conn.close()
    nightly = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 8
                            and app.screen.query_one(KeyedTable))
        await pilot.press("j", "j")
        assert table.cursor_key == nightly
        await pilot.press("o")  # by status: nightly-etl is still in the result
        await until(pilot, lambda: app.snapshot.request.sort == "status")
        await pilot.pause()
        assert table.cursor_key == nightly
        await pilot.press("slash", *"extra", "enter")  # a result without it
        await until(pilot, lambda: app.snapshot.request.text == "extra"
                    and table.row_count == 5)
        await pilot.pause()
        assert table.cursor_row == 0


async def test_go_anywhere_finds_a_run_that_is_not_loaded(fixture_store):
    import sqlite3

    from conftest import FROZEN_NOW, until
    from stepflow_top.store.locate import locate_store
    from stepflow_top.ui.app import StepflowTop
    from stepflow_top.ui.screens.detail import DetailScreen
    from stepflow_top.ui.widgets import KeyedTable
    from textual.command import CommandPalette

    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("INSERT INTO executions (id, name, command, status, created_at) "
                     "VALUES ('ancient-0001', 'ancient-backup', 'x', 'completed', "
                     "'2026-01-01T00:00:00')")
        conn.executemany(
            "INSERT INTO executions (id, name, command, status, created_at) "
            "VALUES (?, ?, 'x', 'completed', ?)",
            [(f"filler-{n}", f"filler-{n}", f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}")
             for n in range(80)])
    conn.close()
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 50)
        assert "ancient-0001" not in app.screen.query_one(KeyedTable).rows  # not loaded
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"ancient")
        await until(pilot, lambda: "ancient-backup" in str(
            app.screen.query_one("CommandList").get_option_at_index(0).prompt)
            if app.screen.query_one("CommandList").option_count else False)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                    and app.screen.execution_id == "ancient-0001")
