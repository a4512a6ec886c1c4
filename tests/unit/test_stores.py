"""live.stores: several stores read as one (issue 10, "Several stores"). The merge is
checked on snapshots built by hand (writer offsets, attachment); the StoreSet on real
copies of the fixture store."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import pytest
from conftest import FIXTURE, FROZEN_NOW, copy_store
from stepflow_top.live.refresher import StoreSnapshot, ViewRequest
from stepflow_top.live.stores import StoreSet, merge, row_key, split_key, wanted_stores
from stepflow_top.live.writer import WriterState
from stepflow_top.store import filters
from stepflow_top.store.locate import StorePaths, locate_stores
from stepflow_top.store.models import Counts, Execution, Status

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
T0 = datetime(2026, 11, 30, 12, 0, 0)  # writer-local times of the hand-made rows


def store(tmp_path, name: str) -> StorePaths:
    return StorePaths(tmp_path / name, tmp_path / name / "database" / "stepflow.db", name)


def snapshot(executions: list[Execution], *, offset_hours: float = 0,
             attached: bool | None = True) -> StoreSnapshot:
    live = tuple(e for e in executions if e.stored_status == "running")
    return StoreSnapshot(
        taken_at=T0, request=ViewRequest(),
        counts=Counts(executions=len(executions), stored={"running": len(live)}, live=live),
        executions=tuple(executions), journal_mode="wal",
        writer=WriterState(attached, offset=timedelta(hours=offset_hours),
                           offset_source="--writer-tz"))


def run(id_: str, minutes: float, status: str = "completed", **fields) -> Execution:
    created = T0 + timedelta(minutes=minutes)
    return Execution(id_, id_, status, created_at=created, started_at=created,
                     completed_at=None if status == "running" else created, **fields)


def test_rows_interleave_by_utc_time_not_by_the_clock_each_writer_shows(tmp_path):
    # Tokyo (UTC+9) saved "19:55", between London's (UTC+0) "10:50" and "11:00".
    london = snapshot([run("l-old", -70), run("l-new", -60)], offset_hours=0)
    tokyo = snapshot([run("t-new", 9 * 60 - 65)], offset_hours=9)
    merged = merge([store(tmp_path, "london"), store(tmp_path, "tokyo")], [london, tokyo],
                   ViewRequest(limit=10), T0, 0, 60.0, {0, 1})
    assert merged.keys == ("london/l-new", "tokyo/t-new", "london/l-old")
    assert [e.id for e in merged.executions] == ["l-new", "t-new", "l-old"]
    assert merged.counts.executions == 3


def test_each_row_is_judged_by_its_own_store(tmp_path):
    dead = snapshot([run("a", -1, "running")], attached=False)
    alive = snapshot([run("b", -1, "running")], attached=True)
    merged = merge([store(tmp_path, "a"), store(tmp_path, "b")], [dead, alive],
                   ViewRequest(limit=10), T0, 0, 60.0, {0, 1})
    statuses = {row.key: row.execution.effective_status(row.judgement)
                for row in merged.rows(T0)}
    assert statuses == {"a/a": Status.LOST, "b/b": Status.RUNNING}


@pytest.mark.parametrize(("sort", "reverse", "expected"), [
    ("name", False, ["a/apple", "b/banana", "a/cherry"]),
    ("name", True, ["a/cherry", "b/banana", "a/apple"]),
    ("exit", False, ["b/banana", "a/cherry", "a/apple"]),  # failures first, then 0
])
def test_the_merged_list_keeps_the_requested_order(tmp_path, sort, reverse, expected):
    a = snapshot([run("cherry", -1, exit_code=1), run("apple", -3, exit_code=None)])
    b = snapshot([run("banana", -2, exit_code=2)])
    merged = merge([store(tmp_path, "a"), store(tmp_path, "b")], [a, b],
                   ViewRequest(limit=10, sort=sort, reverse=reverse), T0, 0, 60.0, {0, 1})
    assert list(merged.keys) == expected


def test_the_limit_cuts_the_merged_list_and_an_unread_store_is_no_error(tmp_path):
    a = snapshot([run(f"r{i}", -i) for i in range(5)])
    merged = merge([store(tmp_path, "a"), store(tmp_path, "b")], [a, None],
                   ViewRequest(limit=3), T0, 0, 60.0, {0})
    assert merged.keys == ("a/r0", "a/r1", "a/r2")
    assert merged.error is None


def test_keys_and_store_words():
    assert split_key(row_key("night shift", NIGHTLY)) == ("night shift", NIGHTLY)
    assert split_key(NIGHTLY) == ("", NIGHTLY)
    assert wanted_stores("store:Prod deploy user:alice store:qa") == (
        ("prod", "qa"), "deploy user:alice")
    wanted = filters.parse("store:prod deploy", FROZEN_NOW)
    assert wanted.stores == ("prod",) and wanted.words == ("deploy",)
    assert wanted.describe() == 'store prod, "deploy"'
    with pytest.raises(filters.FilterError, match="store:prod"):
        filters.parse("store:", FROZEN_NOW)


@pytest.fixture
def two_copies(tmp_path):
    copy_store(FIXTURE, tmp_path / "day")
    copy_store(FIXTURE, tmp_path / "night")
    stores = StoreSet(locate_stores([str(tmp_path / "day"), str(tmp_path / "night"),
                                     str(tmp_path / "gone")]))
    yield stores, tmp_path
    stores.close()


def test_the_store_set_reads_each_store_and_routes_a_detail_to_its_store(two_copies):
    stores, _ = two_copies
    merged = stores.refresh(ViewRequest(limit=10), FROZEN_NOW, force=True)
    assert len(merged.keys) == 6 and len(set(merged.keys)) == 6  # same ids, two stores
    assert [p.snapshot.error is not None for p in merged.parts] == [False, False, True]
    assert merged.error is None
    opened = stores.refresh(ViewRequest(limit=10, execution_id=row_key("night", NIGHTLY)),
                            FROZEN_NOW)
    assert opened.focus == 1 and opened.detail.execution.id == NIGHTLY
    assert str(opened.detail.log_paths[opened.detail.steps[0].id]).startswith(
        str(stores.stores[1].root))
    only = stores.refresh(ViewRequest(limit=10, text="store:night"), FROZEN_NOW)
    assert {split_key(k)[0] for k in only.keys} == {"night"}


def test_nothing_new_is_no_snapshot_even_with_a_store_missing(two_copies):
    stores, _ = two_copies
    request = ViewRequest(limit=10)
    assert stores.refresh(request, FROZEN_NOW, force=True) is not None
    assert stores.refresh(request, FROZEN_NOW) is None  # idle stays idle


def test_a_missing_store_joins_when_it_appears(two_copies):
    stores, tmp_path = two_copies
    request = ViewRequest(limit=10)
    stores.refresh(request, FROZEN_NOW, force=True)
    shutil.copytree(tmp_path / "day", tmp_path / "gone")
    merged = stores.refresh(request, FROZEN_NOW)
    assert merged is not None and len(merged.keys) == 9
    assert all(p.snapshot.error is None for p in merged.parts)
