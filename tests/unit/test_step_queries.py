"""Remembered step aggregates (store.step_queries): an execution whose rows did not
change comes back as the same object; any change to a step row, a plain UPDATE that
keeps its rowid included, gives a new one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import FROZEN_NOW
from stepflow_top.store.locate import locate_store
from stepflow_top.store.models import Judgement
from stepflow_top.store.queries import StoreReader

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"  # finished: its aggregate is remembered


def read(reader: StoreReader, execution_id: str):
    with reader.session():
        [(execution, steps)] = reader.executions_with_steps([execution_id])
    return execution, steps


def test_unchanged_rows_give_the_same_object_and_an_update_a_new_one(fixture_store: Path):
    reader = StoreReader(locate_store(fixture_store))
    first, steps = read(reader, NIGHTLY)
    again, _ = read(reader, NIGHTLY)
    assert again is first
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE steps SET name = 'renamed' WHERE id = ?", [steps[-1].id])
    changed, changed_steps = read(reader, NIGHTLY)
    assert changed is not first
    assert "renamed" in {s.name for s in changed_steps}
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET name = 'other' WHERE id = ?", [NIGHTLY])
    assert read(reader, NIGHTLY)[0].name == "other"


def test_the_window_and_the_feed_share_what_they_read(fixture_store: Path):
    reader = StoreReader(locate_store(fixture_store))
    execution, _ = read(reader, NIGHTLY)
    with reader.session():
        window = reader.executions(Judgement(FROZEN_NOW), limit=50).executions
    assert [e for e in window if e.id == NIGHTLY] == [execution]
    assert next(e for e in window if e.id == NIGHTLY) is execution
