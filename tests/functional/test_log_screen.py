"""The log screen driven with Textual's pilot on copies of the real fixture store: one
test per key, colours and inert escapes as drawn, the safe open as a reader sees it,
and the messages it sends the App."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from conftest import FROZEN_NOW, until
from rich.color import Color
from stepflow_top.store.locate import locate_store
from stepflow_top.store.logs import NEVER_WRITTEN
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.log import LogScreen
from stepflow_top.ui.widgets.log_view import LogView
from stepflow_top.ui.messages import WatchFolder
from stepflow_top.ui.widgets import KeyedTable

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"  # completed, 5 steps
DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"  # pending row, step 1 running, no file
STAMP = "[2026-11-21T19:47:31.000351] "


def step_log(store: Path, execution: str, index: int) -> Path:
    return next((store / "executions" / execution).glob(f"step_{index}_*.log"))


async def open_log(pilot, app, execution: str = NIGHTLY, row: int = 0) -> LogScreen:
    """Open the detail screen of ``execution``, then the log of the step on ``row``;
    returns the log screen once its first read is shown."""
    app.push_screen(DetailScreen(execution))
    steps = await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                        and app.screen.detail is not None
                        and app.screen.query_one("#steps-table", KeyedTable))
    await until(pilot, lambda: steps.row_count > row)
    steps.move_cursor(row=row)
    await pilot.press("enter")
    screen = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen)
    await until(pilot, lambda: screen._read is not None)
    return screen


def make_app(store: Path) -> StepflowTop:
    return StepflowTop(locate_store(store), clock=lambda: FROZEN_NOW, watch=False)


def state(screen: LogScreen) -> str:
    return str(screen.query_one("#log-state").render())


def drawn(view: LogView, y: int) -> list[tuple[str, object]]:
    """The (text, style) segments of row ``y`` as the view draws it."""
    return [(segment.text, segment.style) for segment in view.render_line(y)]


def notes(monkeypatch, screen: LogScreen) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(screen, "notify", lambda message, **_: seen.append(message))
    return seen


async def test_sgr_colours_are_drawn_and_nothing_else_reaches_the_screen(fixture_store):
    step_log(fixture_store, NIGHTLY, 0).write_bytes(
        f"{STAMP}\x1b[32mOK\x1b[0m [bold red]not markup[/]\n"
        f"{STAMP}copy\x1b]52;c;SGVsbG8=\x07 \x1b]8;;https://evil.example\x1b\\link"
        "\x1b]8;;\x1b\\ \x1b[2J\x1b[H\n"
        f"{STAMP}10%\r20%\r100%\n".encode())
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        view = (await open_log(pilot, app)).view
        assert view.lines == [f"{STAMP}OK [bold red]not markup[/]", f"{STAMP}copy link ",
                              f"{STAMP}100%"]
        segments = drawn(view, 0)
        ok = next(style for text, style in segments if text == "OK")
        assert ok.color == Color.from_ansi(2)
        rest = [style for text, style in segments if "not markup" in text]
        assert rest and not any(style.bold for style in rest)  # the brackets stayed text
        row = "".join(text for text, _ in drawn(view, 1))
        assert "\x1b" not in row and "SGVsbG8" not in row and "evil" not in row
        assert not any(style and style.link for _, style in drawn(view, 1))


async def test_w_wraps_long_lines_at_the_view_width_and_back(fixture_store):
    step_log(fixture_store, NIGHTLY, 0).write_text("short\n" + "x" * 250 + "\nlast\n")
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app)
        view = screen.view
        assert view.virtual_size.height == 3 and view.virtual_size.width == 250
        await pilot.press("w")
        width = view.scrollable_content_region.width
        assert view.virtual_size == (width, 2 + -(-250 // width))
        assert "".join(t for t, _ in drawn(view, 1)) == "x" * width  # the first fold
        await pilot.press("w")
        assert view.virtual_size.height == 3


async def test_wrap_and_timestamps_keep_the_line_being_read_on_top(fixture_store):
    step_log(fixture_store, NIGHTLY, 0).write_text(
        "".join(f"{STAMP}line {i} " + "x" * 150 + "\n" for i in range(300)))
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        view = (await open_log(pilot, app)).view
        await pilot.press("g")
        view.scroll_to(y=200, animate=False)
        await pilot.pause()
        assert view.top_line == 200
        await pilot.press("w")
        assert view.top_line == 200 and view.scroll_offset.y > 200
        await pilot.press("t")
        assert view.top_line == 200
        await pilot.press("w", "t")
        assert view.top_line == 200 and view.scroll_offset.y == 200


async def test_t_hides_and_shows_the_service_timestamps(fixture_store):
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        view = (await open_log(pilot, app)).view
        assert view.lines[0] == "[2026-11-21T19:55:36.849624] Setting up environment..."
        await pilot.press("t")
        assert view.lines[0] == "Setting up environment..."
        await pilot.press("t")
        assert view.lines[0].startswith("[2026-11-21T19:55:36.849624] ")


async def test_e_and_E_move_between_error_and_warning_lines_and_say_when_they_wrap(
        fixture_store, monkeypatch):
    step_log(fixture_store, NIGHTLY, 0).write_text(
        "ok\nERROR: first\nok\nWARNING: second\nok\nTraceback (most recent call last):\nok\n")
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app)
        seen = notes(monkeypatch, screen)
        view = screen.view
        assert "2 error, 1 warning lines" in state(screen)
        await pilot.press("g", "e")
        assert view.current == 1
        await pilot.press("e", "e")
        assert view.current == 5 and seen == []
        await pilot.press("e")
        assert view.current == 1 and seen == ["passed the end: continued from the top"]
        await pilot.press("E")
        assert view.current == 5 and seen[-1] == "passed the top: continued from the end"
        assert any(style.underline for _, style in drawn(view, 5))  # the line moved to
        assert drawn(view, 1)[0][1].bgcolor is not None  # error lines are tinted


async def test_search_counts_matches_and_says_when_it_wraps(fixture_store, monkeypatch):
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app, "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26", row=2)
        seen = notes(monkeypatch, screen)
        view = screen.view
        await pilot.press("slash", *"epoch", "enter")
        total = len(view.matches())
        assert total == 5 and view.current == view.matches()[0]
        assert f"1/{total} for 'epoch'" in state(screen)
        await pilot.press("n")
        assert f"2/{total}" in state(screen)
        await pilot.press("N", "N")
        assert view.current == view.matches()[-1] and f"{total}/{total}" in state(screen)
        assert seen == ["passed the top: continued from the end"]
        await pilot.press("escape")  # clears the search
        assert view.search == "" and "for 'epoch'" not in state(screen)


async def test_g_and_G_jump_at_once_and_G_follows_again(fixture_store):
    step_log(fixture_store, NIGHTLY, 0).write_text("".join(f"line {i}\n" for i in range(500)))
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        view = (await open_log(pilot, app)).view
        await until(pilot, lambda: view.scroll_offset.y == view.max_scroll_y > 0)
        await pilot.press("g")
        assert view.scroll_offset.y == 0 and not view.follow  # no animation to wait for
        await pilot.press("G")
        assert view.scroll_offset.y == view.max_scroll_y and view.follow


async def test_F_toggles_follow(fixture_store):
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app)
        await pilot.press("F")
        assert not screen.view.follow and "not following" in state(screen)
        await pilot.press("F")
        assert screen.view.follow and "following" in state(screen)


async def test_o_hands_the_safely_opened_file_to_the_pager_and_comes_back(
        fixture_store, tmp_path, monkeypatch):
    log = step_log(fixture_store, NIGHTLY, 0)
    log.write_bytes(b"\x1b[31mred\x1b[0m for the pager\n")
    copy = tmp_path / "paged"
    monkeypatch.setenv("PAGER", f"{sys.executable} -c 'import shutil, sys; "
                       f"shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], \"wb\"))' {copy}")
    app = make_app(fixture_store)
    # The headless test driver cannot suspend; a real terminal is handed over here.
    monkeypatch.setattr(app, "suspend", nullcontext)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app)
        await pilot.press("o")
        assert copy.read_bytes() == log.read_bytes()
        assert app.screen is screen and app.is_running


async def test_o_refuses_a_planted_link_and_runs_no_pager(fixture_store, tmp_path, monkeypatch):
    log = step_log(fixture_store, NIGHTLY, 0)
    secret = tmp_path / "secret"
    secret.write_text("SECRET\n")
    log.unlink()
    log.symlink_to(secret)
    monkeypatch.setenv("PAGER", "false-pager-that-must-not-run")
    app = make_app(fixture_store)
    monkeypatch.setattr(app, "suspend", nullcontext)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app)
        seen = notes(monkeypatch, screen)
        assert "is a symbolic link" in screen.view.empty_text and screen.view.lines == []
        assert "symbolic link" in state(screen)
        await pilot.press("o")
        assert len(seen) == 1 and "not followed" in seen[0]


async def test_a_step_that_will_never_be_saved_again_says_so(fixture_store):
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        # The script exited: the execution row is final, its step stays `running`.
        conn.execute("UPDATE executions SET status='failed', exit_code=1 WHERE id=?",
                     [DATA_REPORT])
    conn.close()
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app, DATA_REPORT, row=1)
        assert NEVER_WRITTEN in screen.view.empty_text
        assert "yet" not in screen.view.empty_text


async def test_a_running_steps_missing_file_may_still_come(fixture_store):
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app, DATA_REPORT, row=1)
        assert "may not be on disk yet" in screen.view.empty_text


def end_leaving_a_step_running(store: Path) -> None:
    """DATA_REPORT killed (SIGTERM) while its first step ran: the run's row is final,
    the step's row still says running, as the service leaves them."""
    with sqlite3.connect(store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET status='failed', exit_code=-15 WHERE id=?",
                     [DATA_REPORT])
        conn.execute("UPDATE steps SET status='running' WHERE execution_id=? AND step_index=0",
                     [DATA_REPORT])
    conn.close()


async def test_an_implicitly_ended_step_with_an_old_file_says_its_end_is_missing(fixture_store):
    end_leaving_a_step_running(fixture_store)
    app = make_app(fixture_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_log(pilot, app, DATA_REPORT, row=0)
        assert screen.view.lines and f"{NEVER_WRITTEN}: its end is missing" in state(screen)


async def test_the_header_shows_the_step_as_the_detail_screen_does(fixture_store):
    """A step the service ended implicitly (its run failed while the step's row still
    says running) has the detail screen's effective word and how it was inferred in
    the log's header, not "running" with a clock that runs on."""
    end_leaving_a_step_running(fixture_store)
    app = make_app(fixture_store)
    async with app.run_test(size=(160, 30)) as pilot:
        screen = await open_log(pilot, app, DATA_REPORT, row=0)
        [view, *_] = app.snapshot.detail.step_views(app.judgement())
        assert view.status != "running" and view.inferred
        header = str(screen.query_one("#step-summary").render())
        assert view.label in header and view.inferred in header
        assert "running" not in header


async def test_the_screen_asks_the_app_to_watch_its_folder_by_message(fixture_store):
    class Recording(StepflowTop):
        CSS_PATH = Path(sys.modules[StepflowTop.__module__].__file__).with_name("app.tcss")

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.asked: list[Path | None] = []

        def on_watch_folder(self, message: WatchFolder) -> None:
            self.asked.append(message.folder)

    app = Recording(locate_store(fixture_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_log(pilot, app)
        await until(pilot, lambda: app.asked and app.asked[-1] is not None)
        # The detail screen asked for no extra folder; the log screen for its own.
        assert app.asked == [None, fixture_store / "executions" / NIGHTLY]


def test_every_binding_has_a_description():
    assert all(binding.description for binding in LogScreen.BINDINGS)


def test_the_log_screen_imports_no_app():
    """screens post messages, the App navigates: no cycle app -> … -> logscreen -> app."""
    code = ("import sys, stepflow_top.ui.screens.log; "
            "sys.exit('stepflow_top.ui.app' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
