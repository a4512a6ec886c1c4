"""One odd row never hides the others (issue 7 item 7): each oddity below sits in an
otherwise good store, and the list, the detail screen, --once and --events keep working
and show it as what it is."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FROZEN_NOW, until
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from stepflow_top.ui.screens.detail import DetailScreen
from test_app import table

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
DEEP = "[" * 1000 + "]" * 1000


@pytest.fixture
def odd_store(fixture_store: Path) -> Path:
    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:
        add = ("INSERT INTO executions (id, name, command, status, exit_code, created_at, "
               "metadata) VALUES (?, ?, 'x', ?, ?, ?, ?)")
        conn.execute(add, (None, "null-id-1", "completed", 0, "2026-11-21T19:50:01", "{}"))
        conn.execute(add, (None, "null-id-2", "completed", 0, "2026-11-21T19:50:02", "{}"))
        conn.execute(add, ("nul\x00byte", "nul-in-id", "failed", 1, "2026-11-21T19:50:03",
                           "{}"))
        conn.execute(add, ("huge-exit", "huge-exit", "failed", 9e999, "2026-11-21T19:50:04",
                           "{}"))
        conn.execute(add, ("deep-json", "deep-json", "completed", 0, "2026-11-21T19:50:05",
                           DEEP))
        conn.execute(add, ("capitals", "capitals", "Completed", 0, "2026-11-21T19:50:06", "{}"))
    conn.close()
    log = next((fixture_store / "executions" / NIGHTLY).glob("step_0_*.log"))
    try:
        os.utime(log, (2 ** 40, 2 ** 40))  # a modification time past year 9999
    except OverflowError:
        pass
    return fixture_store


async def test_the_list_and_the_detail_keep_working(odd_store):
    app = StepflowTop(locate_store(odd_store), clock=lambda: FROZEN_NOW, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 9)
        names = {str(table(app).get_row_at(i)[1]) for i in range(9)}
        assert {"null-id-1", "null-id-2", "nul-in-id", "huge-exit", "deep-json",
                "capitals", "nightly-etl"} <= names
        assert "completed" in str(table(app).get_cell("capitals", "status"))
        app.push_screen(DetailScreen("deep-json"))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen)
                    and app.screen.detail is not None)
        await pilot.press("i")
        info = str(app.screen.query_one("#info-text").render())
        assert "nested too deep" in info


def test_once_and_events_keep_working(odd_store):
    once = subprocess.run([sys.executable, "-m", "stepflow_top", str(odd_store), "--once",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert once.returncode == 0, once.stderr
    document = json.loads(once.stdout)
    assert document["counts"]["executions"] == 9
    assert document["counts"]["by_status"]["completed"] == 6  # "Completed" counted too
    huge = next(e for e in document["executions"] if e["id"] == "huge-exit")
    assert huge["exit_code"] is None  # 9e999 is no exit code
    events = subprocess.run([sys.executable, "-m", "stepflow_top", str(odd_store), "--events",
                             "--seconds", "1"], capture_output=True, text=True, timeout=60)
    assert events.returncode == 0 and "Traceback" not in events.stderr
