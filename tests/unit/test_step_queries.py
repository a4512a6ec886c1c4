"""Remembered step aggregates (store.step_queries): an execution whose rows did not
change comes back as the same object; a save gives a new one: at once when it changes the
rowid (as the service's INSERT OR REPLACE does), within FULL_PRINT_EVERY seconds the first
time a plain UPDATE keeps it, and at once after that."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import FROZEN_NOW
from stepflow_top.store.locate import locate_store
from stepflow_top.store.models import Judgement
from stepflow_top.store.queries import StoreReader
from stepflow_top.store.step_queries import FULL_PRINT_EVERY

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"  # finished: its aggregate is remembered


def read(reader: StoreReader, execution_id: str):
    with reader.session():
        [(execution, steps)] = reader.executions_with_steps([execution_id])
    return execution, steps


def test_unchanged_rows_give_the_same_object_and_a_replace_a_new_one_at_once(fixture_store: Path):
    reader = StoreReader(locate_store(fixture_store))
    first, steps = read(reader, NIGHTLY)
    again, _ = read(reader, NIGHTLY)
    assert again is first
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        # How the service saves (STEPFLOW_STORE.md): the row gets a new rowid.
        conn.execute("INSERT OR REPLACE INTO steps SELECT * FROM steps WHERE id = ?",
                     [steps[-1].id])
        conn.execute("UPDATE steps SET name = 'renamed' WHERE id = ?", [steps[-1].id])
    changed, changed_steps = read(reader, NIGHTLY)
    assert changed is not first
    assert "renamed" in {s.name for s in changed_steps}
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET name = 'other' WHERE id = ?", [NIGHTLY])
    assert read(reader, NIGHTLY)[0].name == "other"


def test_a_writer_that_updates_in_place_is_seen_within_the_full_print_interval_then_at_once(
        fixture_store: Path):
    reader = StoreReader(locate_store(fixture_store))
    now = [1000.0]
    reader.clock = lambda: now[0]
    first, steps = read(reader, NIGHTLY)
    database = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(database) as conn:  # a plain UPDATE keeps the rowid
        conn.execute("UPDATE steps SET name = 'renamed' WHERE id = ?", [steps[-1].id])
    assert read(reader, NIGHTLY)[0] is first  # the rowid print cannot see it yet
    now[0] += FULL_PRINT_EVERY
    changed, changed_steps = read(reader, NIGHTLY)
    assert changed is not first and "renamed" in {s.name for s in changed_steps}
    assert reader.in_place_saves
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE steps SET name = 'again' WHERE id = ?", [steps[-1].id])
    assert "again" in {s.name for s in read(reader, NIGHTLY)[1]}  # from now on at once


def test_the_window_and_the_feed_share_what_they_read(fixture_store: Path):
    reader = StoreReader(locate_store(fixture_store))
    execution, _ = read(reader, NIGHTLY)
    with reader.session():
        window = reader.executions(Judgement(FROZEN_NOW), limit=50).executions
    assert [e for e in window if e.id == NIGHTLY] == [execution]
    assert next(e for e in window if e.id == NIGHTLY) is execution


def test_step_prints_are_taken_once_per_session(fixture_store: Path):
    """The change feed and the window read mostly the same runs within one session:
    their step rows' prints are asked of SQLite once; the next session asks again."""
    reader = StoreReader(locate_store(fixture_store))
    read(reader, NIGHTLY)  # the first read also takes the full print
    asked: list[str] = []
    rows = reader.rows

    def counting(sql, params=()):
        if "GROUP BY execution_id" in sql:
            asked.append(sql)
        return rows(sql, params)

    reader.rows = counting
    with reader.session():
        ids = [e.id for e, _ in reader.executions_with_steps([NIGHTLY])]
        reader.executions(Judgement(FROZEN_NOW), limit=50)
        assert reader.executions_with_steps([NIGHTLY])[0][0].id == ids[0]
    assert len(asked) == 2  # NIGHTLY's, then the window's other runs'
    with reader.session():
        reader.executions_with_steps([NIGHTLY])
    assert len(asked) == 3
