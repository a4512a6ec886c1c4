"""The store layer against real SQLite files: the fixture the real service wrote,
and hand-made stores with the oddities DESIGN.md promise 6 lists."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import FROZEN_NOW
from stepflow_top.store.connection import StoreUnavailable
from stepflow_top.store.locate import locate_store
from stepflow_top.store.logs import read_log
from stepflow_top.store.models import Judgement, Status
from stepflow_top.store.queries import StoreReader
from stepflow_top.store.text import literal

DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"
NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"


AT = Judgement(FROZEN_NOW)  # the fixture's own moment; the writer's presence unknown


def reader_for(root: Path) -> StoreReader:
    reader = StoreReader(locate_store(root))
    reader.open()
    return reader


def listed(reader: StoreReader, judgement: Judgement = AT, **kwargs) -> list:
    return list(reader.executions(judgement, **kwargs).executions)


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
    executions = {e.id: e for e in listed(reader)}
    report = executions[DATA_REPORT]
    assert report.stored_status == "pending"
    assert report.effective_status(AT) is Status.RUNNING
    assert report.progress == (1, 2)
    assert report.current_step == "Data Collection"
    assert executions[NIGHTLY].effective_status(AT) is Status.COMPLETED


def test_with_no_service_attached_unfinished_runs_are_lost_and_stop_ticking(fixture_store):
    report = next(e for e in listed(reader_for(fixture_store)) if e.id == DATA_REPORT)
    gone = Judgement(FROZEN_NOW, writer_attached=False)
    assert report.effective_status(gone) is Status.LOST
    assert report.inferred_from(gone) == "no service has the database open"
    later = Judgement(FROZEN_NOW + timedelta(hours=1), writer_attached=False)
    assert report.duration(gone) == report.duration(later)  # a lost run never ticks
    assert report.duration(AT) < report.duration(Judgement(FROZEN_NOW + timedelta(hours=1)))


def test_runs_older_than_the_attached_service_are_lost(fixture_store):
    report = next(e for e in listed(reader_for(fixture_store)) if e.id == DATA_REPORT)
    restarted = Judgement(FROZEN_NOW, writer_attached=True,
                          writer_started=report.last_seen + timedelta(seconds=1))
    assert report.effective_status(restarted) is Status.LOST
    still = Judgement(FROZEN_NOW, writer_attached=True,
                      writer_started=report.created_at - timedelta(seconds=1))
    assert report.effective_status(still) is Status.RUNNING


def test_executions_come_newest_first_and_the_window_is_limited(fixture_store):
    reader = reader_for(fixture_store)
    names = [e.name for e in listed(reader)]
    assert names == ["data-report", "shell-build", "nightly-etl"]
    assert [e.name for e in listed(reader, limit=2)] == names[:2]


def test_text_and_status_filters(fixture_store):
    reader = reader_for(fixture_store)
    assert [e.name for e in listed(reader, text="bob")] == ["shell-build"]
    assert [e.name for e in listed(reader, text="100%_")] == []
    running = listed(reader, status=Status.RUNNING)
    assert [e.name for e in running] == ["data-report"]
    assert len(listed(reader, status=Status.COMPLETED)) == 2
    gone = Judgement(FROZEN_NOW, writer_attached=False)
    assert [e.name for e in listed(reader, gone, status=Status.LOST)] == ["data-report"]


def test_counts_are_by_effective_status(fixture_store):
    from stepflow_top.live.refresher import Refresher, ViewRequest

    refresher = Refresher(locate_store(fixture_store))
    counts = refresher.refresh(ViewRequest(), FROZEN_NOW, tables=True).counts
    refresher.close()
    assert (counts.executions, counts.steps, counts.artifacts) == (3, 11, 4)
    assert counts.by_status(AT) == {"completed": 2, "running": 1}
    assert counts.by_status(Judgement(FROZEN_NOW, writer_attached=False)) == {
        "completed": 2, "lost": 1}


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
    report = next(e for e in listed(reader_for(fixture_store)) if e.id == DATA_REPORT)
    last = report.last_change
    assert report.effective_status(Judgement(last + timedelta(seconds=5), 60)) is Status.RUNNING
    assert report.effective_status(Judgement(last + timedelta(seconds=61), 60)) is Status.STALLED


def test_a_pending_row_without_steps_is_running_since_it_was_created(fixture_store):
    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:
        for table in ("artifacts", "steps", "executions"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("INSERT INTO executions (id, name, command, status, created_at) "
                     "VALUES ('x', 'queued', 'true', 'pending', '2026-11-21T10:00:00')")
    execution = listed(reader_for(fixture_store))[0]
    assert execution.effective_status(AT) is Status.RUNNING  # the service has no queue
    assert execution.start == datetime(2026, 11, 21, 10, 0)
    assert execution.duration(AT) == (FROZEN_NOW - execution.start).total_seconds()


def test_other_schema_versions_read_missing_columns_as_null(tmp_path):
    db = tmp_path / "database" / "stepflow.db"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE executions (id TEXT PRIMARY KEY, name TEXT, status TEXT, "
                     "created_at TEXT)")
        conn.execute("INSERT INTO executions VALUES ('a', 'old', 'completed', 'not a date')")
    reader = reader_for(tmp_path)
    [execution] = listed(reader)
    assert (execution.name, execution.user_name, execution.created_at) == ("old", None, None)
    assert reader.count("steps") == 0


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
    listed(reader, text="report")
    reader.stored_status_counts()
    reader.detail(DATA_REPORT)
    assert not reader.conn.in_transaction
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("DELETE FROM executions")


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
    assert first.counts.by_status(AT) == {"completed": 2, "running": 1}
    assert refresher.refresh(ViewRequest(), FROZEN_NOW) is None  # no file moved
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:  # another connection
        conn.execute("INSERT OR REPLACE INTO executions SELECT id, name, command, "
                     "working_directory, 'failed', 1, 'boom', created_at, created_at, created_at,"
                     " environment, user_name, tags, 2, 1, 1, metadata FROM executions "
                     "WHERE id=?", [DATA_REPORT])
    second = refresher.refresh(ViewRequest(), FROZEN_NOW)
    assert second.counts.by_status(AT) == {"completed": 2, "failed": 1}
    refresher.close()


@pytest.mark.parametrize("seconds, shown", [
    (None, "—"), (0.44, "0.4s"), (12.9, "12s"), (185, "3m05s"), (599, "9m59s"),
    (600, "10m"), (3599, "59m"), (3725, "1h02m"), (90061, "1d01h"),
])
def test_durations_are_compact_and_drop_seconds_after_ten_minutes(seconds, shown):
    from stepflow_top.formatting import duration

    assert duration(seconds) == shown


def test_settings_survive_a_bad_file_and_round_trip(tmp_path):
    from stepflow_top.live.settings import Settings

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
        conn.executemany(  # newer runs sitting between steps: stalled two minutes later
            "INSERT INTO executions (id, name, command, status, created_at) "
            "VALUES (?, 'stuck', 'x', 'pending', '2026-11-21T19:56:05')",
            [(f"stuck-{n}",) for n in range(60)])
        conn.executemany(
            "INSERT INTO steps (id, execution_id, name, step_index, status, created_at, "
            "started_at, completed_at) VALUES (?, ?, 'one', 0, 'completed', "
            "'2026-11-21T19:56:05', '2026-11-21T19:56:05', '2026-11-21T19:56:06')",
            [(f"s-{n}", f"stuck-{n}") for n in range(60)])
    reader = reader_for(fixture_store)
    later = Judgement(FROZEN_NOW + timedelta(minutes=2))
    assert [e.id for e in listed(reader, later, limit=50, status=Status.RUNNING)] == [DATA_REPORT]
    assert len(listed(reader, later, limit=50, status=Status.STALLED)) == 50


def test_a_filter_that_matches_little_stops_at_its_time_budget(fixture_store):
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.executemany(
            "INSERT INTO executions (id, name, command, status, created_at) "
            "VALUES (?, 'filler', 'x', 'completed', '2026-11-21T20:00:00')",
            [(f"filler-{n}",) for n in range(5000)])
    reader = reader_for(fixture_store)
    window = reader.executions(AT, text="nightly", budget_s=0)
    assert window.executions == () and window.searched == 2000  # one slice, then out of time
    window = reader.executions(AT, text="nightly")
    assert [e.name for e in window.executions] == ["nightly-etl"] and window.searched is None


def test_the_current_step_is_the_newest_running_one_and_a_final_run_has_none(fixture_store):
    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        # Steps the service never saved as finished stay `running` for ever.
        conn.execute("UPDATE steps SET status='running' WHERE step_index=0")
    executions = {e.id: e for e in listed(reader_for(fixture_store))}
    assert executions[DATA_REPORT].current_step == "Data Collection"
    assert executions[NIGHTLY].running_step is None
    assert executions[NIGHTLY].current_step == "final_validation"


def test_steps_the_service_ended_implicitly_show_how_they_ended(fixture_store):
    from stepflow_top.store.models import effective_steps

    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:  # a STEP_START ended step 0 without re-saving it
        conn.execute("UPDATE steps SET status='running', completed_at=NULL "
                     "WHERE execution_id=? AND step_index=0", [DATA_REPORT])
    detail = reader_for(fixture_store).detail(DATA_REPORT)
    first, second = detail.step_views(AT)
    assert (first.status, second.status) == ("completed", "running")
    assert first.inferred == "ended when the next step started"
    assert first.end == second.step.started_at
    with sqlite3.connect(db) as conn:  # the script then failed: the run's row is final
        conn.execute("UPDATE executions SET status='failed', exit_code=1, "
                     "completed_at='2026-11-21T19:56:05.000000' WHERE id=?", [DATA_REPORT])
    detail = reader_for(fixture_store).detail(DATA_REPORT)
    views = effective_steps(detail.execution, detail.steps)
    assert [v.status for v in views] == ["completed", "failed"]
    assert "ended with its execution" in views[1].inferred
    assert views[1].duration(FROZEN_NOW + timedelta(hours=5)) == pytest.approx(3.624335)
    assert detail.first_failed_step(AT).name == "Data Collection"
    assert detail.execution.progress == (2, 2)  # both steps are over


def test_a_damaged_page_further_down_leaves_the_rows_above_it(fixture_store):
    db = fixture_store / "database" / "stepflow.db"
    with sqlite3.connect(db) as conn:  # older runs, on pages of their own
        conn.executemany(
            "INSERT INTO executions (id, name, command, status, created_at) "
            "VALUES (?, ?, 'x', 'completed', ?)",
            [(f"old-{n:04d}", "x" * 200, f"2026-10-01T00:{n // 60:02d}:{n % 60:02d}")
             for n in range(3000)])
        # The leaf page holding the oldest run (dbstat: SQLite's page map).
        [(page,)] = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'executions' AND pagetype = 'leaf' "
            "ORDER BY pageno LIMIT 1 OFFSET 1").fetchall()
    conn.close()
    with open(db, "r+b") as handle:  # the test process holds no connection now
        handle.seek((page - 1) * 4096)
        handle.write(b"\xff" * 4096)
    window = reader_for(fixture_store).executions(AT, limit=5000)
    assert window.damaged_after is not None and window.damaged_after >= 3
    assert [e.name for e in window.executions[:3]] == ["data-report", "shell-build",
                                                       "nightly-etl"]
