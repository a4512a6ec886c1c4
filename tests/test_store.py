"""The store layer against real SQLite files: the fixture the real service wrote,
and hand-made stores with the oddities DESIGN.md promise 6 lists."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from stepflow_top.store.connection import StoreUnavailable
from stepflow_top.store.locate import locate_store
from stepflow_top.store.logs import read_log
from stepflow_top.store.models import Status
from stepflow_top.store.queries import StoreReader
from stepflow_top.store.text import literal

from conftest import FROZEN_NOW

DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"
NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"


def reader_for(root: Path, **kwargs) -> StoreReader:
    reader = StoreReader(locate_store(root), **kwargs)
    reader.open()
    return reader


@pytest.mark.parametrize("suffix", ["", "database", "database/stepflow.db"])
def test_a_store_is_found_from_its_root_its_database_folder_or_the_file(fixture_store, suffix):
    paths = locate_store(fixture_store / suffix if suffix else fixture_store)
    assert paths.root == fixture_store
    assert paths.database == fixture_store / "database" / "stepflow.db"


def test_the_default_store_is_the_environment_variable_else_storage(monkeypatch, tmp_path):
    monkeypatch.setenv("STEPFLOW_STORAGE_PATH", str(tmp_path / "elsewhere"))
    assert locate_store().root == tmp_path / "elsewhere"
    monkeypatch.delenv("STEPFLOW_STORAGE_PATH")
    monkeypatch.chdir(tmp_path)
    assert locate_store().root == tmp_path / "storage"


def test_a_pending_row_with_a_running_step_is_running(fixture_store):
    reader = reader_for(fixture_store)
    executions = {e.id: e for e in reader.executions(FROZEN_NOW)}
    report = executions[DATA_REPORT]
    assert report.stored_status == "pending"
    assert report.effective_status(FROZEN_NOW) is Status.RUNNING
    assert report.progress == (1, 2)
    assert report.current_step == "Data Collection"
    assert executions[NIGHTLY].effective_status(FROZEN_NOW) is Status.COMPLETED


def test_executions_come_newest_first_and_the_window_is_limited(fixture_store):
    reader = reader_for(fixture_store)
    names = [e.name for e in reader.executions(FROZEN_NOW)]
    assert names == ["data-report", "shell-build", "nightly-etl"]
    assert [e.name for e in reader.executions(FROZEN_NOW, limit=2)] == names[:2]


def test_text_and_status_filters(fixture_store):
    reader = reader_for(fixture_store)
    assert [e.name for e in reader.executions(FROZEN_NOW, text="bob")] == ["shell-build"]
    assert [e.name for e in reader.executions(FROZEN_NOW, text="100%_")] == []
    running = reader.executions(FROZEN_NOW, status=Status.RUNNING)
    assert [e.name for e in running] == ["data-report"]
    assert len(reader.executions(FROZEN_NOW, status=Status.COMPLETED)) == 2


def test_counts_are_by_effective_status(fixture_store):
    counts = reader_for(fixture_store).counts(tables=True)
    assert (counts.executions, counts.steps, counts.artifacts) == (3, 11, 4)
    assert counts.by_status(FROZEN_NOW) == {"completed": 2, "running": 1}


def test_detail_holds_steps_in_order_artifacts_and_log_paths(fixture_store):
    detail = reader_for(fixture_store).detail(NIGHTLY)
    assert [s.index for s in detail.steps] == [0, 1, 2, 3, 4]
    assert all(path.exists() for path in detail.log_paths.values())
    report = reader_for(fixture_store).detail("b98c3c75-fc75-42c2-8a8e-0ba7e891ab26")
    assert {a.name for a in report.artifacts} >= {"model.pkl", "processed_data.csv"}
    assert not any(a.exists for a in report.artifacts)  # the files were never copied
    assert reader_for(fixture_store).detail("no-such-id") is None


def test_a_run_between_steps_turns_stalled_after_the_threshold(fixture_store):
    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:  # make data-report sit between steps
        conn.execute("UPDATE steps SET status='completed', completed_at=started_at "
                     "WHERE execution_id=? AND status='running'", [DATA_REPORT])
    reader = reader_for(fixture_store, stall_after=60)
    report = next(e for e in reader.executions(FROZEN_NOW) if e.id == DATA_REPORT)
    last = report.last_change
    assert report.effective_status(last + timedelta(seconds=5), 60) is Status.RUNNING
    assert report.effective_status(last + timedelta(seconds=61), 60) is Status.STALLED


def test_a_pending_row_without_steps_is_pending(fixture_store):
    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:
        for table in ("artifacts", "steps", "executions"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("INSERT INTO executions (id, name, command, status, created_at) "
                     "VALUES ('x', 'queued', 'true', 'pending', '2026-11-21T10:00:00')")
    execution = reader_for(fixture_store).executions(FROZEN_NOW)[0]
    assert execution.effective_status(FROZEN_NOW) is Status.PENDING


def test_other_schema_versions_read_missing_columns_as_null(tmp_path):
    db = tmp_path / "database" / "stepflow.db"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE executions (id TEXT PRIMARY KEY, name TEXT, status TEXT, "
                     "created_at TEXT)")
        conn.execute("INSERT INTO executions VALUES ('a', 'old', 'completed', 'not a date')")
    reader = reader_for(tmp_path)
    [execution] = reader.executions(FROZEN_NOW)
    assert (execution.name, execution.user_name, execution.created_at) == ("old", None, None)
    assert reader.counts(tables=True).steps == 0


@pytest.mark.parametrize(
    "prepare, phrase",
    [
        (lambda db: None, "no database at"),
        (lambda db: db.write_bytes(b"this is not sqlite" * 100), "not a readable SQLite"),
        (lambda db: sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit(),
         "no executions table"),
    ],
    ids=["missing", "not-a-database", "not-stepflow"],
)
def test_unreadable_stores_raise_one_clear_line(tmp_path, prepare, phrase):
    db = tmp_path / "database" / "stepflow.db"
    db.parent.mkdir(parents=True)
    prepare(db)
    with pytest.raises(StoreUnavailable) as raised:
        reader_for(tmp_path)
    assert phrase in str(raised.value)
    assert "\n" not in str(raised.value)


def test_reads_leave_no_transaction_open(fixture_store):
    reader = reader_for(fixture_store)
    reader.executions(FROZEN_NOW)
    reader.counts()
    reader.detail(DATA_REPORT)
    assert not reader.conn.in_transaction
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("DELETE FROM executions")


def test_saved_since_finds_every_save_after_a_mark(fixture_store):
    reader = reader_for(fixture_store)
    marks = reader.max_rowids()
    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:  # the service's way: INSERT OR REPLACE
        conn.execute("INSERT OR REPLACE INTO steps SELECT id, execution_id, name, description, "
                     "step_index, 'completed', 0, error_message, created_at, started_at, "
                     "started_at, estimated_duration, stop_on_error, metadata FROM steps "
                     "WHERE status='running'")
    executions, steps = reader.saved_since(*marks)
    assert executions == []
    assert [(s.name, s.status) for _rowid, s in steps] == [("Data Collection", "completed")]


# -- log files -------------------------------------------------------------
def test_a_log_is_read_literally(tmp_path):
    log = tmp_path / "step.log"
    log.write_bytes(b"[bold red]not markup[/]\n\x1b[31mred\x1b[0m\n\xff\xfe bad utf-8\ntab\there\n")
    lines = read_log(log).lines
    assert lines[0] == "[bold red]not markup[/]"
    assert lines[1] == "\\x1b[31mred\\x1b[0m"
    assert lines[2] == "\\xff\\xfe bad utf-8"
    assert "\t" not in lines[3]


def test_a_huge_log_is_read_from_its_end(tmp_path):
    log = tmp_path / "step.log"
    log.write_bytes(b"".join(b"line %07d\n" % i for i in range(300_000)))
    read = read_log(log, max_bytes=64 * 1024)
    assert read.lines[-1] == "line 0299999"
    assert read.skipped_bytes > 0 and read.skipped_bytes + 64 * 1024 >= read.size
    assert read.lines[0].startswith("line ")  # the cut partial line was dropped


def test_a_missing_log_says_why(tmp_path):
    read = read_log(tmp_path / "absent.log")
    assert read.lines == () and "when it saves the step's row" in read.missing


def test_literal_spells_out_controls_and_bidi_overrides():
    assert literal("a\x1b[2Jb\r\n") == "a\\x1b[2Jb\\x0d\\x0a"
    assert literal("x\u202ey") == "x\\u202ey"
    assert literal(None) == ""


def test_refresh_skips_queries_when_nothing_changed_and_recounts_after_a_save(fixture_store):
    from stepflow_top.live.refresher import Refresher, ViewRequest

    refresher = Refresher(locate_store(fixture_store))
    first = refresher.refresh(ViewRequest(), FROZEN_NOW)
    assert first.counts.by_status(FROZEN_NOW) == {"completed": 2, "running": 1}
    assert refresher.refresh(ViewRequest(), FROZEN_NOW) is None  # data_version unchanged
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:  # another connection
        conn.execute("INSERT OR REPLACE INTO executions SELECT id, name, command, "
                     "working_directory, 'failed', 1, 'boom', created_at, created_at, created_at,"
                     " environment, user_name, tags, 2, 1, 1, metadata FROM executions "
                     "WHERE id=?", [DATA_REPORT])
    second = refresher.refresh(ViewRequest(), FROZEN_NOW)
    assert second.counts.by_status(FROZEN_NOW) == {"completed": 2, "failed": 1}
    refresher.close()


@pytest.mark.parametrize("seconds, shown", [
    (None, "—"), (0.44, "0.4s"), (12.9, "12s"), (185, "3m05s"), (599, "9m59s"),
    (600, "10m"), (3599, "59m"), (3725, "1h02m"), (90061, "1d01h"),
])
def test_durations_are_compact_and_drop_seconds_after_ten_minutes(seconds, shown):
    from stepflow_top.formatting import duration

    assert duration(seconds) == shown


def test_settings_survive_a_bad_file_and_round_trip(tmp_path):
    from stepflow_top.settings import Settings

    path = tmp_path / "settings.json"
    assert Settings.load(path) == Settings()  # missing
    path.write_text("{not json")
    assert Settings.load(path) == Settings()  # malformed
    path.write_text('{"sort": "name", "interval": -3}')
    assert Settings.load(path) == Settings()  # invalid values
    Settings(sort="duration", status="failed", interval=2.0).save(path)
    assert Settings.load(path) == Settings(sort="duration", status="failed", interval=2.0)


def test_a_timestamp_that_overflows_local_time_is_read_as_unknown(fixture_store):
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE steps SET completed_at='9999-12-31T23:59:59-05:00' "
                     "WHERE execution_id=? AND step_index=0", [NIGHTLY])
    detail = reader_for(fixture_store).detail(NIGHTLY)
    assert detail.steps[0].completed_at is None


def test_a_live_status_filter_finds_runs_behind_many_newer_live_rows(fixture_store):
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.executemany(
            "INSERT INTO executions (id, name, command, status, created_at) "
            "VALUES (?, 'crashed', 'x', 'pending', '2026-11-21T20:00:00')",
            [(f"crashed-{n}",) for n in range(60)])
    found = reader_for(fixture_store).executions(FROZEN_NOW, limit=50, status=Status.RUNNING)
    assert [e.id for e in found] == [DATA_REPORT]


def test_the_current_step_is_the_newest_running_one_and_a_final_run_has_none(fixture_store):
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        # Steps the service never saved as finished stay `running` for ever.
        conn.execute("UPDATE steps SET status='running' WHERE step_index=0")
    executions = {e.id: e for e in reader_for(fixture_store).executions(FROZEN_NOW)}
    assert executions[DATA_REPORT].current_step == "Data Collection"
    assert executions[NIGHTLY].running_step is None
    assert executions[NIGHTLY].current_step == "final_validation"
