"""Snapshot tests of every screen: the fixture store at a fixed path, a frozen clock.

SVGs live in snapshots/test_snapshots/; after a deliberate UI change, review and
accept them with ``pytest tests/functional/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FIXTURE, FROZEN_NOW, copy_store, until
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from stepflow_top.ui.screens.log import LogScreen
from stepflow_top.ui.widgets.log_view import LogView
from stepflow_top.ui.widgets import KeyedTable

SHELL_BUILD = "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26"
# The store bar shows the store's path, so it must be the same on every machine.
STORE = Path(tempfile.gettempdir()) / "stepflow-top-snapshots" / "storage"


def store_app(*edits: str, logs: dict[str, str] | None = None) -> StepflowTop:
    """The app on a fresh copy of the fixture at STORE, after the SQL ``edits`` (run
    before the app exists: it holds no connection yet) and with the ``logs`` files
    written (path under executions/ → text)."""
    shutil.rmtree(STORE.parent, ignore_errors=True)
    copy_store(FIXTURE, STORE)
    if edits:
        with closing(sqlite3.connect(STORE / "database" / "stepflow.db")) as db, db:
            for statement in edits:
                db.execute(statement)
    for name, text in (logs or {}).items():
        (STORE / "executions" / name).write_text(text)
    # The store bar shows the last commit's time: the file's, as the service left it.
    last_commit = FROZEN_NOW.timestamp() - 9
    os.utime(STORE / "database" / "stepflow.db", (last_commit, last_commit))
    return StepflowTop(locate_store(STORE), clock=lambda: FROZEN_NOW, watch=False)


@pytest.fixture
def app() -> StepflowTop:
    yield store_app()
    shutil.rmtree(STORE.parent, ignore_errors=True)


@pytest.fixture
def store_apps():
    """``store_app`` as a fixture that removes the store afterwards."""
    yield store_app
    shutil.rmtree(STORE.parent, ignore_errors=True)


async def settle(pilot, predicate) -> None:
    """Run the app until ``predicate()`` holds (failing after 30 s, never silently: a
    snapshot of a screen still loading would differ under load), then one more frame."""
    await until(pilot, predicate, timeout=30)
    await pilot.pause()


def rows(app, selector: str) -> int:
    return app.screen.query_one(selector, KeyedTable).row_count


async def open_shell_build(pilot, app) -> None:
    """From the executions list to shell-build's detail screen, steps loaded."""
    await settle(pilot, lambda: rows(app, "#executions") == 3)
    app.push_screen(DetailScreen(SHELL_BUILD))
    await settle(pilot, lambda: rows(app, "#steps-table") == 4)


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
        await open_shell_build(pilot, app)

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)


def test_detail_artifacts_tab(snap_compare, app):
    async def ready(pilot):
        await open_shell_build(pilot, app)
        await pilot.press("a")
        await settle(pilot, lambda: rows(app, "#artifacts-table") == 4)

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)


def test_log_screen_with_search(snap_compare, app):
    async def ready(pilot):
        await open_shell_build(pilot, app)
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


def fixed_health():
    """A health reading with every panel filled: a WAL of 120 frames, 40 of them
    pending, a reader on read mark 1, and a short checkpoint history."""
    from stepflow_top.live.health import HealthState
    from stepflow_top.wal.format import DbHeader, ShmHeader, WalHeader
    from stepflow_top.wal.history import CheckpointEvent, WalWarning
    from stepflow_top.wal.probe import ReadLock, WalSample

    wall = FROZEN_NOW.timestamp()
    sample = WalSample(
        db_path=str(STORE / "database" / "stepflow.db"), monotonic=1000.0, wall=wall,
        db_exists=True, db_size=57344,
        db_header=DbHeader(4096, 2, 2, 7, 14, 0),
        wal_exists=True, wal_size=32 + 200 * 4120, wal_inode=1,
        wal_header=WalHeader(0x377F0682, 3007000, 4096, 3, 1234, 99, 0, 0, True),
        shm_exists=True,
        shm_header=ShmHeader(3007000, 57, True, False, 4096, 120, 20, (0, 0), 1234, 99,
                             (0, 0), 80, (0, 80, None, None, None), 80, "little"),
        read_locks=(ReadLock(4242, 1),),
    )
    events = (
        CheckpointEvent(wall - 300, "wal_created", wal_size_after=0),
        CheckpointEvent(wall - 240, "checkpoint", "backfill", frames=500, at_least=True,
                        wal_size_before=2_060_032, wal_size_after=2_060_032),
        CheckpointEvent(wall - 180, "wal_reset", frames=1000, salt1=1233, count=2,
                        wal_size_before=4_120_032, wal_size_after=4_120_032),
        CheckpointEvent(wall - 60, "checkpoint", "truncate", frames=120,
                        wal_size_before=494_432, wal_size_after=0),
    )
    return HealthState(
        sample=sample, events=events,
        warnings=(WalWarning("checkpoint_starved", "Checkpoints are starved: pid 4242 has "
                             "held read mark 1 (frame 80) for 45 s while 40 frames wait.",
                             pid=4242),),
        wal_sizes=(*range(0, 824_032, 41_000), 32 + 200 * 4120), pending=(*range(0, 40, 2), 40),
        counts={"wal_created": 1, "backfill": 1, "wal_reset": 2, "truncate": 1},
        rates={"wal_reset": 0.4, "truncate": 0.2, "backfill": 0.2},
    )


def test_health_screen(snap_compare, app):
    state = fixed_health()
    app.health_monitor.sample = lambda journal_mode=None, taken=None: state

    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)
        await pilot.press("2")
        await settle(pilot, lambda: rows(app, "#history-table") == 4)

    assert snap_compare(app, terminal_size=(100, 36), run_before=ready)


def test_health_screen_at_60x20(snap_compare, app):
    state = fixed_health()
    app.health_monitor.sample = lambda journal_mode=None, taken=None: state

    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3)
        await pilot.press("2")
        await settle(pilot, lambda: rows(app, "#history-table") == 4
                     and app.screen.has_class("compact"))
        app.clear_notifications()  # the starved-checkpoint toast would hide half the screen
        await pilot.pause()

    assert snap_compare(app, terminal_size=(60, 20), run_before=ready)


# Wide terminals (issue 9): error messages of failed runs, then tags.
FAILURES = (
    "UPDATE executions SET status='failed', exit_code=-15, tags='[\"etl\", \"nightly\"]' "
    "WHERE name='nightly-etl'",
    "UPDATE executions SET status='failed', exit_code=1, error_message='Critical step "
    "failed: Model Evaluation - accuracy 0.71 below the 0.80 threshold', "
    "tags='[\"ml\", \"weekly\"]' WHERE name='shell-build'",
)


def wide_columns(app) -> bool:
    """The list has fitted itself to the rows: error and tags opened (a second pass
    once the rows are known, see ExecutionsScreen._fit)."""
    return {"error", "tags"} <= {c.value for c in
                                 app.screen.query_one("#executions", KeyedTable).columns}


def test_executions_screen_at_160x40(snap_compare, store_apps):
    app = store_apps(*FAILURES)

    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3 and wide_columns(app))

    assert snap_compare(app, terminal_size=(160, 40), run_before=ready)


def test_executions_screen_at_200x40(snap_compare, store_apps):
    app = store_apps(*FAILURES)

    async def ready(pilot):
        await settle(pilot, lambda: rows(app, "#executions") == 3 and wide_columns(app))

    assert snap_compare(app, terminal_size=(200, 40), run_before=ready)


# data-report's running step, after META:PROGRESS:50 and META:DESCRIPTION: markers (each
# a save of the step, which rewrites its log file whole: STEPFLOW_STORE.md).
DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"
COLLECTION = "6d7d209f-f62c-4441-8131-1b4bdf32e707"
PROGRESS = (
    "UPDATE steps SET metadata='{\"ESTIMATED_DURATION\": \"180\", \"PROGRESS\": \"50\", "
    f"\"DESCRIPTION\": \"Collecting sales data from 3 regions\"}}' WHERE id='{COLLECTION}'",
)
COLLECTION_LOG = {f"{DATA_REPORT}/step_1_{COLLECTION}.log": (
    "[2026-11-21T19:56:01.401220] Connecting to the sales database...\n"
    "[2026-11-21T19:56:03.512004] Region north: 12,408 rows\n"
    "[2026-11-21T19:56:05.620931] Region south: 9,977 rows\n")}


def running(app: StepflowTop) -> StepflowTop:
    """Nothing holds the copied store open, so its pending run would be lost: sample it
    as on a system whose locks cannot be read (another OS, a container without
    /proc/locks), where nothing is called lost and the bar says so."""
    sample = app.refresher.probe.sample
    app.refresher.probe.sample = lambda db: replace(sample(db), locks_readable=False)
    return app


async def open_data_report(pilot, app) -> None:
    await settle(pilot, lambda: rows(app, "#executions") == 3)
    app.push_screen(DetailScreen(DATA_REPORT))
    await settle(pilot, lambda: rows(app, "#steps-table") == 2)


def test_detail_steps_with_progress(snap_compare, store_apps):
    app = running(store_apps(*PROGRESS, logs=COLLECTION_LOG))

    async def ready(pilot):
        await open_data_report(pilot, app)

    assert snap_compare(app, terminal_size=(120, 24), run_before=ready)


def test_log_header_with_meta(snap_compare, store_apps):
    app = running(store_apps(*PROGRESS, logs=COLLECTION_LOG))

    async def ready(pilot):
        await open_data_report(pilot, app)
        app.screen.query_one("#steps-table", KeyedTable).move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, LogScreen)
                     and len(app.screen.query_one(LogView).lines) == 3)

    assert snap_compare(app, terminal_size=(100, 24), run_before=ready)
