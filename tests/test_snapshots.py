"""Snapshot tests of every screen: the fixture store at a fixed path, a frozen clock.

SVGs live in snapshots/test_snapshots/; after a deliberate UI change, review and
accept them with ``pytest tests/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.detail import DetailScreen
from stepflow_top.ui.logscreen import LogScreen
from stepflow_top.ui.logview import LogView
from stepflow_top.ui.widgets import KeyedTable

from conftest import FIXTURE, FROZEN_NOW, copy_store

SHELL_BUILD = "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26"
# The store bar shows the store's path, so it must be the same on every machine.
STORE = Path(tempfile.gettempdir()) / "stepflow-top-snapshots" / "storage"


@pytest.fixture
def app() -> StepflowTop:
    shutil.rmtree(STORE.parent, ignore_errors=True)
    copy_store(FIXTURE, STORE)
    yield StepflowTop(locate_store(STORE), clock=lambda: FROZEN_NOW, watch=False)
    shutil.rmtree(STORE.parent, ignore_errors=True)


async def settle(pilot, predicate) -> None:
    for _ in range(200):
        try:
            if predicate():
                break
        except Exception:
            pass
        await pilot.pause(0.02)
    await pilot.pause()


def rows(app, selector: str) -> int:
    return app.screen.query_one(selector, KeyedTable).row_count


def test_executions_screen(snap_compare, app):
    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)


def test_executions_screen_at_80x24(snap_compare, app):
    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_detail_screen(snap_compare, app):
    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)
        app.push_screen(DetailScreen(SHELL_BUILD))
        await settle(pilot, lambda: rows(app, "#steps-table") == 4)

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)


def test_detail_artifacts_tab(snap_compare, app):
    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)
        app.push_screen(DetailScreen(SHELL_BUILD))
        await settle(pilot, lambda: rows(app, "#steps-table") == 4)
        await pilot.press("a")
        await settle(pilot, lambda: rows(app, "#artifacts-table") == 4)

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)


def test_log_screen_with_search(snap_compare, app):
    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)
        app.push_screen(DetailScreen(SHELL_BUILD))
        await settle(pilot, lambda: rows(app, "#steps-table") == 4)
        app.screen.query_one("#steps-table", KeyedTable).move_cursor(row=2)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, LogScreen)
                     and app.screen.query_one(LogView).lines)
        await pilot.press("slash", *"epoch", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)


def test_help_screen(snap_compare, app):
    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=ready)
