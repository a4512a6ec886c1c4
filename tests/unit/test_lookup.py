"""``store.lookup.find_executions``: what ``--wait EXECUTION`` means by an id, an id
prefix, a name (its newest run) and ``latest``, on a bulk-built store."""

from __future__ import annotations

import sqlite3

import pytest

from stepflow_top.demo.bulk import populate
from stepflow_top.store import lookup
from stepflow_top.store.locate import locate_store
from stepflow_top.store.lookup import LATEST, find_executions
from stepflow_top.store.queries import StoreReader


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("lookup") / "storage"
    populate(root, executions=300, steps_per_execution=1, seed=5, running=0)
    return locate_store(root)


def newest_rows(store, where: str = "1", params=()) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{store.database}?mode=ro", uri=True) as conn:
        rows = conn.execute(f"SELECT id, name FROM executions WHERE {where} "
                            "ORDER BY created_at DESC, rowid DESC", params).fetchall()
    conn.close()
    return rows


def find(store, query: str) -> list[str]:
    with StoreReader(store).session() as reader:
        return [c.id for c in find_executions(reader, query)]


def test_latest_an_id_and_a_prefix(store):
    rows = newest_rows(store)
    assert find(store, LATEST) == [rows[0][0]]
    some = rows[123][0]
    assert find(store, some) == [some]
    assert find(store, some[:13].upper()) == [some]
    assert find(store, "no-such-run") == []


def test_a_short_prefix_may_mean_several(store):
    first = newest_rows(store)[0][0][0]
    found = find(store, first)
    expected = [i for i, _n in newest_rows(store) if i.startswith(first)]
    assert len(found) == min(len(expected), lookup.MAX_CANDIDATES + 1) > 1


def test_a_name_is_its_newest_run_across_slices(store, monkeypatch):
    monkeypatch.setattr(lookup, "NAME_SLICE", 7)  # many statements over 300 rows
    rows = newest_rows(store)
    newest_of = {}
    for position, (execution_id, name) in enumerate(rows):
        newest_of.setdefault(name, (position, execution_id))
    name, (position, execution_id) = max(newest_of.items(), key=lambda item: item[1][0])
    assert position >= 7, "every name recurs in the newest slice: no slice is crossed"
    assert find(store, name) == [execution_id]
