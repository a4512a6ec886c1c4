"""The TUI driven with Textual's pilot, on the fixture and on a live writer in a
separate process. Assertions are on what the widgets hold, as a user would see it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from conftest import FROZEN_NOW, until
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.executions import ExecutionsScreen
from stepflow_top.ui.screens.help import HelpScreen
from stepflow_top.ui.screens.log import LogScreen
from stepflow_top.ui.widgets.log_view import LogView
from stepflow_top.ui.widgets import KeyedTable, StoreBar

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"


def table(app, selector: str = "#executions") -> KeyedTable:
    return app.screen.query_one(selector, KeyedTable)


def status_of(app, key: str) -> str:
    return str(table(app).get_cell(key, "status"))


async def open_log(pilot, app, execution_id: str, steps: int, row: int) -> LogView:
    """From the executions list: open ``execution_id``, wait for its ``steps`` step
    rows, open the log of the step on ``row``, and return the log view once filled."""
    await until(pilot, lambda: table(app).row_count == 3)
    app.push_screen(DetailScreen(execution_id))
    await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                and table(app, "#steps-table").row_count == steps)
    table(app, "#steps-table").move_cursor(row=row)
    await pilot.press("enter")
    view = await until(pilot, lambda: isinstance(app.screen, LogScreen)
                       and app.screen.query_one(LogView))
    await until(pilot, lambda: view.lines)
    return view


async def test_rows_appear_and_change_as_the_writer_commits(writer):
    app = StepflowTop(locate_store(writer.root), fallback=30)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count >= 1)
        key = table(app).cursor_key
        first = status_of(app, key)
        assert "running" in first or "pending" in first
        await until(pilot, lambda: status_of(app, key) != first, timeout=60)
        await until(pilot, lambda: any(w in status_of(app, key) for w in ("completed", "failed")),
                    timeout=60)


async def test_the_cursor_stays_on_its_execution_when_new_rows_arrive(writer):
    app = StepflowTop(locate_store(writer.root), fallback=30)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count >= 2, timeout=60)
        await pilot.press("down")
        chosen = table(app).cursor_key
        count = table(app).row_count
        await until(pilot, lambda: table(app).row_count > count, timeout=60)
        assert table(app).cursor_key == chosen
        assert table(app).cursor_row > 1  # it moved down with its row


async def test_drill_down_to_steps_and_a_log_and_back(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.press("j", "j")  # the reader's move: the list stops following the newest
        assert table(app).cursor_key == NIGHTLY
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await until(pilot, lambda: table(app, "#steps-table").row_count == 5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        view = app.screen.query_one(LogView)
        await until(pilot, lambda: view.lines)
        assert view.lines[0].endswith("Setting up environment...")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ExecutionsScreen))
        assert table(app).cursor_key == NIGHTLY


async def test_opening_a_failed_execution_lands_on_its_first_failed_step(fixture_store):
    import sqlite3

    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE steps SET status='failed', exit_code=3, error_message='boom' "
                     "WHERE execution_id=? AND step_index IN (2, 3)", [NIGHTLY])
        conn.execute("UPDATE executions SET status='failed', exit_code=3 WHERE id=?", [NIGHTLY])
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        table(app).move_cursor(row=table(app).get_row_index(NIGHTLY))
        await pilot.press("enter")
        steps = await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                            and table(app, "#steps-table").row_count == 5
                            and table(app, "#steps-table"))
        assert steps.cursor_row == 2
        await pilot.press("e")
        assert steps.cursor_row == 3
        await pilot.press("G")  # the table's own keys: no screen forwards them
        assert steps.cursor_row == 4
        await pilot.press("g")
        assert steps.cursor_row == 0
        await pilot.press("end", "k")
        assert steps.cursor_row == 3
        await pilot.press("home", "j")
        assert steps.cursor_row == 1


async def test_help_lists_the_keys_of_the_focused_log_view_and_no_toast_covers_it(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_log(pilot, app, NIGHTLY, steps=5, row=0)
        await pilot.press("question_mark")
        help_screen = await until(pilot, lambda: isinstance(app.screen, HelpScreen)
                                  and app.screen)
        text = str(help_screen.query_one("#help Static").render())
        for words in ("PgDn", "PgUp", "Down", "Next match", "Wrap", "Next error", "? / F1",
                      "Executions", "Status words"):
            assert words in text
        assert "↓" not in text and "↑" not in text  # keys spelled, not drawn
        app.notify("a failure arrived")
        rack = await until(pilot, lambda: help_screen.query_one("#textual-toastrack"))
        assert rack.styles.display == "none"
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await until(pilot, lambda: app.screen.query("Toast"))


async def test_the_log_view_follows_a_file_rewritten_whole(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW)
    log = next((fixture_store / "executions" / NIGHTLY).glob("step_4_*.log"))
    async with app.run_test(size=(100, 30)) as pilot:
        view = await open_log(pilot, app, NIGHTLY, steps=5, row=4)
        before = len(view.lines)
        # The service's way, from another process: truncate, then write it all again.
        script = ("import sys; p = sys.argv[1]; old = open(p, 'rb').read(); "
                  "f = open(p, 'wb'); f.write(old + b''.join(b'[t] more %d\\n' % i "
                  "for i in range(50))); f.close()")
        subprocess.run([sys.executable, "-c", script, str(log)], check=True)
        await until(pilot, lambda: len(view.lines) == before + 50)
        assert view.lines[-1] == "[t] more 49"
        await until(pilot, lambda: view.scroll_offset.y == view.max_scroll_y > 0)  # followed
        # Rewritten shorter (a new run of the step): replaced, not appended.
        subprocess.run([sys.executable, "-c",
                        "import sys; open(sys.argv[1], 'wb').write(b'fresh\\n')", str(log)],
                       check=True)
        await until(pilot, lambda: view.lines == ["fresh"])


async def test_log_search_moves_between_matches(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await open_log(pilot, app, "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26", steps=4, row=2)
        await pilot.press("slash", *"epoch", "enter")
        matches = view.matches()
        assert len(matches) >= 2
        assert view.current == matches[0]
        await pilot.press("n")
        assert view.current == matches[1]
        await pilot.press("N")
        assert view.current == matches[0]


async def test_pause_holds_the_screen_until_resumed(writer):
    app = StepflowTop(locate_store(writer.root), fallback=30)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count >= 1)
        await pilot.press("p")
        held = app.snapshot
        bar = app.screen.query_one(StoreBar)
        await until(pilot, lambda: "newer data waiting" in str(bar.render()), timeout=60)
        assert app.snapshot is held
        await pilot.press("p")
        assert app.snapshot is not held and not app.paused


async def test_the_app_waits_for_a_missing_database_and_starts_when_it_appears(tmp_path):
    from conftest import WriterProcess

    root = tmp_path / "later"
    app = StepflowTop(locate_store(root), fallback=30)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.snapshot is not None and app.snapshot.error)
        assert "no database" in app.snapshot.error
        writer = WriterProcess(root)
        try:
            await until(pilot, lambda: table(app).row_count >= 1, timeout=60)
        finally:
            writer.stop()


async def test_store_text_is_shown_literally(fixture_store):
    import sqlite3

    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET name=? WHERE id=?",
                     ["[bold red]x[/]\x1b[2J", NIGHTLY])
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        name = table(app).get_cell(NIGHTLY, "name")
        assert name.plain == "[bold red]x[/]\\x1b[2J"
        assert not name.spans and not name.style


def test_a_session_changes_no_byte_of_the_database(fixture_store):
    """Promise 1: run a whole session (list, detail, log, help) and compare bytes."""
    db = fixture_store / "database" / "stepflow.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    files_before = {p.name for p in db.parent.iterdir()}

    async def session():
        app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: table(app).row_count == 3)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("enter", "question_mark", "escape", "escape", "escape", "q")

    import asyncio

    asyncio.run(session())
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    created = {p.name for p in db.parent.iterdir()} - files_before
    assert created <= {"stepflow.db-wal", "stepflow.db-shm"}


def test_layers_import_only_downward():
    """DESIGN.md's layer table: wal/ the standard library only; store/ may use wal/
    (its read-only recipe) but no live/ or ui/; live/ no ui/; none imports Textual."""
    import ast

    import stepflow_top

    root = Path(stepflow_top.__file__).parent
    forbidden = {
        "wal": {"store", "live", "ui", "demo", "textual", "sqlite_utils", "humanize",
                "watchfiles", "rich"},
        "store": {"live", "ui", "demo", "textual", "rich"},
        "live": {"ui", "demo", "textual", "rich"},
    }
    found = []
    for layer, banned in forbidden.items():
        for path in (root / layer).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                    if node.level:  # relative: ..wal.x -> wal, .x stays in the layer
                        names = [(node.module or "").split(".")[0]] if node.level > 1 else []
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top == "stepflow_top":
                        top = name.split(".")[1] if "." in name else top
                    if top in banned:
                        found.append(f"{path.relative_to(root)} imports {name}")
    assert found == []


async def test_key_2_shows_live_wal_health_and_key_1_returns(writer):
    from stepflow_top.ui.screens.health import HealthScreen

    app = StepflowTop(locate_store(writer.root), fallback=30)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count >= 1)
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, HealthScreen))
        figures = app.screen.query_one("#wal-figures")
        await until(pilot, lambda: "frames" in str(figures.render()))
        first = app.health.sample.frames
        await until(pilot, lambda: app.health.sample.frames != first, timeout=60)  # live
        await pilot.press("c")
        await until(pilot, lambda: app.integrity is not None, timeout=60)
        assert app.integrity.ok
        names = [r.name for r in app.integrity.results]
        assert names == ["quick_check", "foreign_key_check"]
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, ExecutionsScreen))


async def test_scheduled_quick_checks_run_without_a_key_press(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False,
                      integrity_every=0.3)
    async with app.run_test(size=(100, 30)) as pilot:
        report = await until(pilot, lambda: app.integrity)
        assert report.ok
        assert [r.name for r in report.results] == ["quick_check", "foreign_key_check"]


async def test_the_command_palette_opens_an_execution_by_name(fixture_store):
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.press("ctrl+p", *"shell-build")
        await pilot.pause(0.3)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen)
        assert screen.execution_id == "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26"


async def test_sort_and_status_filter_stick_between_sessions(fixture_store, attached_service):
    from stepflow_top.store.models import Status

    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.press("o", "o")  # newest → status → name
        await pilot.press("s")  # all → running
        await until(pilot, lambda: table(app).row_count == 1)

    again = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with again.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: table(again).row_count == 1)
        assert again.request.status is Status.RUNNING
        assert again.screen.sort == "name"


async def test_markup_and_escapes_in_store_text_never_reach_the_palette_or_toasts(fixture_store):
    import sqlite3

    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE executions SET user_name='a[/bold]b' WHERE id=?", [NIGHTLY])
    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.press("ctrl+p", *"nightly")  # a str help would be parsed as markup
        await pilot.pause(0.3)
        await pilot.press("escape")
        with sqlite3.connect(db) as conn:  # fails now, saved the service's way: a toast
            conn.execute("INSERT OR REPLACE INTO executions SELECT id, ?, command, "
                         "working_directory, 'failed', 1, 'boom', created_at, started_at, "
                         "'2026-11-21T20:00:00', environment, user_name, tags, total_steps, "
                         "completed_steps, current_step_index, metadata FROM executions "
                         "WHERE id=?", ["boom\x1b]2;PWNED\x07", NIGHTLY])
        toast = await until(pilot, lambda: app.screen.query("Toast").first())
        assert "boom\\x1b]2;PWNED\\x07 failed" in str(toast.render())
        assert app.is_running


async def test_a_failure_outside_the_filtered_window_is_announced_once(fixture_store):
    import sqlite3

    app = StepflowTop(locate_store(fixture_store), clock=lambda: FROZEN_NOW)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.press("slash", *"data-report", "enter")  # nightly-etl is filtered out
        await until(pilot, lambda: table(app).row_count == 1)
        with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
            conn.execute("INSERT OR REPLACE INTO executions SELECT id, name, command, "
                         "working_directory, 'failed', 1, 'boom', created_at, started_at, "
                         "completed_at, environment, user_name, tags, total_steps, "
                         "completed_steps, current_step_index, metadata FROM executions "
                         "WHERE id=?", [NIGHTLY])
        toast = await until(pilot, lambda: app.screen.query("Toast").first())
        assert "nightly-etl failed" in str(toast.render())
        await pilot.press("escape")  # the failed run comes into view: no second toast
        await until(pilot, lambda: table(app).row_count == 3)
        await pilot.pause(0.3)
        assert len(app.screen.query("Toast")) == 1


def test_store_wal_and_live_import_no_textual():
    """DESIGN.md layers: the core knows nothing of Textual."""
    code = (
        "import sys\n"
        "import stepflow_top.store.queries, stepflow_top.store.logs, stepflow_top.live.refresher\n"
        "import stepflow_top.live.changes, stepflow_top.live.hints, stepflow_top.live.health\n"
        "import pkgutil, importlib, stepflow_top.wal as w\n"
        "for m in pkgutil.iter_modules(w.__path__): importlib.import_module('stepflow_top.wal.' + m.name)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
