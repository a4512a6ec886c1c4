"""StepFlow consistency checks on the real fixture and on hand-made stores: what the
service does normally is no finding; lost runs only when no service has the database
open; contradictions are CRITICAL; odd rows never crash a check."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from stepflow_top.live.checks import run_checks
from stepflow_top.store.consistency import (
    CONSISTENCY_CHECKS,
    check_consistency,
    writer_now,
)
from stepflow_top.store.locate import locate_store
from stepflow_top.wal.integrity import State

# The fixture was taken at about this local time; its last save was the running step's
# start, 19:56:01.
FIXTURE_NOW = datetime(2026, 11, 21, 19, 57, 0)
LAST_SAVE = datetime(2026, 11, 21, 19, 56, 1, 375665)

DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"
RUNNING_STEP = "6d7d209f-f62c-4441-8131-1b4bdf32e707"
NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
NIGHTLY_STEP0 = "03610f8c-4e5f-4950-bc88-11ca83df76c2"
NIGHTLY_STEP4 = "897e4cdf-288e-4cab-aef3-8ed7168430e5"


def stamp_files(root: Path, at: datetime) -> None:
    """Give the database and every log the modification time ``at`` (local time): as if
    the service's last commit and log writes happened then."""
    t = at.timestamp()
    for path in [root / "database" / "stepflow.db", *(root / "executions").rglob("*.log")]:
        os.utime(path, (t, t))


@pytest.fixture
def store(fixture_store: Path) -> Path:
    """A writable copy of the stepflow-midrun fixture whose file times match its rows."""
    stamp_files(fixture_store, LAST_SAVE)
    return fixture_store


def edit(root: Path, *sql: str, params: tuple = ()) -> None:
    """Change the store from this process (no check is running), then put the file
    times back to the fixture's last save."""
    conn = sqlite3.connect(root / "database" / "stepflow.db")
    for s in sql:
        conn.execute(s, params if "?" in s else ())
    conn.commit()
    conn.close()
    stamp_files(root, LAST_SAVE)


def check(root: Path, now: datetime = FIXTURE_NOW, writer_attached: bool | None = True,
          **kw):
    report = run_checks(locate_store(root), "consistency", now=now,
                        writer_attached=writer_attached, **kw)
    assert [r.name for r in report.results] == list(CONSISTENCY_CHECKS)
    return report, {r.name: r for r in report.results}


def test_fixture_mid_run_with_its_service_attached_is_ok(store: Path) -> None:
    report, results = check(store)
    assert report.state is State.OK and report.state.exit_code == 0
    assert all(r.status == "ok" and r.details == [] for r in results.values())
    assert (report.counts.executions, report.counts.running, report.counts.lost) == (3, 1, 0)
    # Not knowing whether a service is attached is no reason to call a run lost.
    report, _ = check(store, writer_attached=None)
    assert report.state is State.OK and report.counts.lost == 0


def test_a_run_is_lost_when_no_service_has_the_database_open(store: Path) -> None:
    report, results = check(store, writer_attached=False)
    lost = results["lost_runs"]
    assert lost.severity is State.WARNING and report.state is State.WARNING
    [finding] = lost.findings
    assert DATA_REPORT in finding.text and "lost run" in finding.text
    assert (report.counts.running, report.counts.lost) == (0, 1)
    assert all(r.ok for n, r in results.items() if n != "lost_runs")


def test_two_days_later_the_running_step_is_stalled_not_lost(store: Path) -> None:
    later = FIXTURE_NOW + timedelta(days=2)
    for attached, why in ((True, "possibly restarted"), (None, "not known")):
        report, results = check(store, now=later, writer_attached=attached)
        [finding] = results["lost_runs"].findings
        assert finding.severity is State.WARNING
        assert DATA_REPORT in finding.text and "stalled" in finding.text and why in finding.text
        assert report.counts.lost == 0 and report.counts.stalled == 1


def test_what_the_service_does_normally_is_no_finding(store: Path) -> None:
    edit(
        store,
        # A failed run whose last step ended implicitly: the step row stays running.
        "UPDATE executions SET status = 'failed', exit_code = 1, total_steps = 2, "
        f"completed_steps = 1, completed_at = '2026-11-21T19:56:30' WHERE id = '{DATA_REPORT}'",
        # A cancelled run (stored failed / -15) with a step left running inside it.
        "INSERT INTO executions (id, name, command, status, exit_code, created_at, "
        "total_steps, completed_steps) VALUES ('cancelled-run', 'c', 'x', 'failed', -15, "
        "'2026-11-21T19:50:00', 1, 0)",
        "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) "
        "VALUES ('left-running', 'cancelled-run', 'Tail', 0, 'running', '2026-11-21T19:50:00')",
    )
    # A finished step that printed nothing has no log file.
    (store / "executions" / NIGHTLY / f"step_4_{NIGHTLY_STEP4}.log").unlink()
    for attached in (True, False, None):
        report, results = check(store, now=FIXTURE_NOW + timedelta(days=30),
                                writer_attached=attached)
        assert report.state is State.OK, [r.details for r in results.values()]
    # No step has printed anything yet: no executions/ folder at all.
    shutil.rmtree(store / "executions")
    assert check(store)[0].state is State.OK


def test_contradictions_are_critical_and_odd_log_files_a_warning(store: Path) -> None:
    edit(
        store,
        "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) "
        "VALUES ('lost-step', 'gone-exec', 'Lost', 0, 'completed', '2026-11-21T19:00:00')",
        "INSERT INTO artifacts (id, execution_id, name, file_path, created_at) "
        "VALUES ('lost-art', 'gone-exec', 'a', '/x', '2026-11-21T19:00:00')",
        "INSERT INTO artifacts (id, execution_id, step_id, name, file_path, created_at) "
        f"VALUES ('bad-step-art', '{NIGHTLY}', 'no-such-step', 'b', '/y', '2026-11-21T19:00:00')",
        f"UPDATE executions SET completed_steps = 4 WHERE id = '{NIGHTLY}'",
    )
    execs = store / "executions"
    (execs / "ghost-exec").mkdir()
    (execs / "ghost-exec" / "step_0_ghost-step.log").write_text("[t] hi\n")
    shutil.copy(execs / NIGHTLY / f"step_0_{NIGHTLY_STEP0}.log",
                execs / DATA_REPORT / f"step_0_{NIGHTLY_STEP0}.log")
    (execs / NIGHTLY / f"step_7_{NIGHTLY_STEP4}.log").write_text("wrong index\n")
    (execs / NIGHTLY / "step_9_planted.log").symlink_to("/etc/passwd")
    os.mkfifo(execs / NIGHTLY / "step_8_fifo.log")
    (execs / DATA_REPORT / "notes.txt").write_text("not a log")  # not a step log: ignored

    report, results = check(store, batch=2)
    assert report.state is State.CRITICAL and report.state.exit_code == 2

    orphans = results["orphan_rows"]
    assert orphans.severity is State.CRITICAL and len(orphans.findings) == 3
    text = "\n".join(orphans.details)
    assert "step lost-step" in text and "artifact lost-art" in text
    assert "artifact bad-step-art names step no-such-step" in text

    [totals] = results["execution_totals"].findings
    assert totals.severity is State.CRITICAL
    assert NIGHTLY in totals.text and "completed_steps=4" in totals.text

    logs = results["log_files"]
    assert logs.severity is State.WARNING
    assert all(f.severity is State.WARNING for f in logs.findings)
    text = "\n".join(logs.details)
    assert "executions/ghost-exec/step_0_ghost-step.log: no step ghost-step; " \
           "execution ghost-exec does not exist" in text
    assert f"step {NIGHTLY_STEP0} belongs to execution {NIGHTLY}" in text
    assert f"step {NIGHTLY_STEP4} has index 4, the file name says 7" in text
    assert "step_9_planted.log: a symbolic link" in text
    assert "step_8_fifo.log: a FIFO" in text
    assert len(logs.findings) == 5

    # Reading in batches of two rows or of thousands finds the same.
    again = check(store, batch=5000)[1]
    for name in CONSISTENCY_CHECKS:
        assert sorted(again[name].details) == sorted(results[name].details)


def test_findings_gone_from_the_live_database_are_not_reported(store: Path, tmp_path: Path):
    """The checks read a copy; what changed in the live database since is confirmed
    there (a housekeeping delete finished, a step started after the copy)."""
    database = store / "database" / "stepflow.db"
    edit(store, "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) "
                "VALUES ('half-deleted', 'gone-exec', 'x', 0, 'completed', '2026-11-21T19:00')")
    copy_path = tmp_path / "copy.db"
    with sqlite3.connect(database) as live, sqlite3.connect(copy_path) as copy:
        live.backup(copy)
    live.close()
    edit(store, "DELETE FROM steps WHERE id = 'half-deleted'",
         "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) VALUES "
         f"('new-step', '{DATA_REPORT}', 'New', 2, 'running', '2026-11-21T19:56:59')")
    (store / "executions" / DATA_REPORT / "step_2_new-step.log").write_text("[t] hi\n")

    copy = sqlite3.connect(copy_path)
    try:
        def live_db():
            return sqlite3.connect(f"file:{database}?mode=ro", uri=True)

        unconfirmed = check_consistency(copy, store, now=FIXTURE_NOW, writer_attached=True)
        confirmed = check_consistency(copy, store, now=FIXTURE_NOW, writer_attached=True,
                                      live=live_db)
    finally:
        copy.close()
    first = {r.name: r for r in unconfirmed.results}
    assert first["orphan_rows"].findings and first["log_files"].findings
    assert all(r.ok for r in confirmed.results), [r.details for r in confirmed.results]


def test_a_writer_in_another_time_zone_raises_no_alarm(store: Path) -> None:
    """The service writes its local time without a zone; here it is 8 h ahead of the
    reader. The file times (absolute) tell the offset: a run saved a minute ago is
    not stalled, and one quiet for two days still is."""
    edit(store, "UPDATE steps SET started_at = '2026-11-22T03:56:01.375665', "
                f"created_at = '2026-11-22T03:56:01.375665' WHERE id = '{RUNNING_STEP}'",
         f"DELETE FROM steps WHERE execution_id = '{DATA_REPORT}' AND id != '{RUNNING_STEP}'")
    for log in (store / "executions" / DATA_REPORT).iterdir():
        log.unlink()
    assert check(store, now=FIXTURE_NOW)[0].state is State.OK
    report, results = check(store, now=FIXTURE_NOW + timedelta(days=2))
    assert "stalled" in results["lost_runs"].findings[0].text
    # writer_now itself: an offset beyond any time zone is not believed.
    assert writer_now(FIXTURE_NOW, FIXTURE_NOW + timedelta(hours=8), FIXTURE_NOW) == \
        FIXTURE_NOW + timedelta(hours=8)
    assert writer_now(FIXTURE_NOW, FIXTURE_NOW + timedelta(days=300), FIXTURE_NOW) == FIXTURE_NOW


DEEP = "[" * 1000 + "]" * 1000
ODD_ROWS = {
    "NULL ids": (
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES (NULL, 'null-id', 'x', 'pending', '2026-11-21T19:56:00')",
        "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) "
        f"VALUES (NULL, '{DATA_REPORT}', 'null-step', 2, 'completed', '2026-11-21T19:56:00')",
        "INSERT INTO artifacts (id, execution_id, step_id, name, file_path, created_at) "
        f"VALUES (NULL, '{DATA_REPORT}', NULL, 'a', '/x', '2026-11-21T19:56:00')",
    ),
    "a NUL byte and a path in an id": (
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES ('bad' || char(0) || 'id/../..', 'nul-id', 'x', 'pending', "
        "'2026-11-21T19:56:00')",
        "INSERT INTO steps (id, execution_id, name, step_index, status, created_at) "
        "VALUES ('s' || char(0), 'bad' || char(0) || 'id/../..', 'n', 0, 'running', "
        "'2026-11-21T19:56:00')",
    ),
    "exit_code 9e999": (
        f"UPDATE executions SET exit_code = 9e999, total_steps = 9e999 WHERE id = '{NIGHTLY}'",
        f"UPDATE steps SET exit_code = -9e999, step_index = 9e999 WHERE id = '{RUNNING_STEP}'",
    ),
    "JSON nested 1000 deep": (
        f"UPDATE executions SET metadata = '{DEEP}', tags = '{DEEP}', environment = '{DEEP}'",
        f"UPDATE steps SET metadata = '{DEEP}'",
    ),
    "statuses in other case": (
        f"UPDATE executions SET status = 'Completed' WHERE id = '{NIGHTLY}'",
        f"UPDATE executions SET status = 'PENDING' WHERE id = '{DATA_REPORT}'",
        f"UPDATE steps SET status = upper(status) WHERE execution_id = '{NIGHTLY}'",
        f"UPDATE steps SET status = 'Running' WHERE id = '{RUNNING_STEP}'",
    ),
    "odd times and statuses": (
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES ('odd-time', 'o', 'x', 'pending', '9999-12-31T23:59:59.999999+14:00')",
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES ('no-time', 'n', 'x', 'pending', 'yesterday-ish')",
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES ('odd-status', 'p', 'x', 'paused', '2026-11-21T19:56:00')",
        "INSERT INTO executions (id, name, command, status, created_at) "
        "VALUES ('blob-status', 'b', 'x', x'00ff', 1234)",
    ),
}


@pytest.mark.parametrize("case", list(ODD_ROWS))
def test_odd_rows_never_crash_a_check(store: Path, case: str) -> None:
    from stepflow_top.cli import check as check_mode

    edit(store, *ODD_ROWS[case])
    for attached in (True, False, None):
        report, results = check(store, now=FIXTURE_NOW + timedelta(days=2),
                                writer_attached=attached)
        assert all(r.status in ("ok", "failed") for r in results.values()), report
        # The --check output of it: one line of literal text per finding, valid JSON.
        assert "\x00" not in check_mode.text(report)
        json.loads(json.dumps(check_mode.document(report), allow_nan=False))


def test_odd_rows_are_judged_by_what_can_be_read(store: Path) -> None:
    edit(store, *ODD_ROWS["NULL ids"], *ODD_ROWS["a NUL byte and a path in an id"],
         *ODD_ROWS["statuses in other case"], *ODD_ROWS["odd times and statuses"])
    report, results = check(store, writer_attached=False)
    text = "\n".join(results["lost_runs"].details)
    assert "None (null-id)" in text and "bad\x00id/../.. (nul-id)" in text
    assert DATA_REPORT in text and "odd-time" in text and "no-time" in text
    assert report.counts.lost == 5
    assert "'paused', which StepFlow does not write" in text
    assert results["execution_totals"].ok  # 'Completed' is final, its totals agree
    report, results = check(store, writer_attached=True)
    assert "no-time (n): its timestamps cannot be read" in "\n".join(results["lost_runs"].notes)


def test_a_log_time_beyond_year_9999(tmp_path_factory) -> None:
    """A file time Python cannot turn into a date (tmpfs keeps 64-bit times)."""
    base = Path(tempfile.mkdtemp(dir="/dev/shm")) if os.path.isdir("/dev/shm") else None
    if base is None:
        pytest.skip("no tmpfs here")
    try:
        from conftest import FIXTURE, copy_store

        root = copy_store(FIXTURE, base / "storage")
        stamp_files(root, LAST_SAVE)
        log = next((root / "executions" / DATA_REPORT).iterdir())
        os.utime(log, (1e13, 1e13))
        os.utime(root / "database" / "stepflow.db", (1e13, 1e13))
        if os.stat(log).st_mtime != 1e13:
            pytest.skip("this filesystem does not keep times beyond year 9999")
        report, _ = check(root, now=FIXTURE_NOW + timedelta(days=2))
        assert report.state is State.OK  # a future file time makes nothing look old
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_stores_that_cannot_be_read(tmp_path: Path, store: Path) -> None:
    report = run_checks(locate_store(tmp_path / "nothing-here"), "consistency",
                        now=FIXTURE_NOW, writer_attached=None)
    assert report.state is State.UNKNOWN and report.state.exit_code == 3
    assert report.results == [] and "no database" in report.error

    other = tmp_path / "other" / "database" / "stepflow.db"
    other.parent.mkdir(parents=True)
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE executions(id TEXT)")
    conn.close()
    report, results = check(other.parent.parent)
    assert report.state is State.UNKNOWN
    assert all(r.status == "error" and r.severity is State.UNKNOWN for r in results.values())
    assert "not a StepFlow store: no table steps, artifacts" in results["orphan_rows"].reason


def test_a_cancelled_check_is_cancelled_and_the_next_run_starts_clean(store: Path) -> None:
    edit(store, f"UPDATE executions SET completed_steps = 4 WHERE id = '{NIGHTLY}'")
    stop = threading.Event()
    stop.set()
    report, results = check(store, cancel=stop)
    assert report.state is State.CANCELLED and not report.ok
    assert all(r.status == "cancelled" and r.severity is State.CANCELLED
               for r in results.values())

    stop = threading.Event()

    def cancel_at_totals(fraction: float, phrase: str) -> None:
        if phrase == "execution totals":
            stop.set()

    report, results = check(store, cancel=stop, progress=cancel_at_totals)
    assert results["orphan_rows"].ok
    assert [results[n].status for n in CONSISTENCY_CHECKS[1:]] == ["cancelled"] * 3
    assert report.state is State.CANCELLED

    report, results = check(store)
    assert report.state is State.CRITICAL
    assert [r.name for r in report.results if not r.ok] == ["execution_totals"]
    assert not any(r.status == "cancelled" for r in report.results)


def test_checks_write_nothing_and_create_no_file_beside_a_closed_store(store: Path) -> None:
    database = store / "database" / "stepflow.db"
    before = database.read_bytes()
    from stepflow_top.live.checks import WalWatch

    watch = WalWatch(database)
    try:
        report = run_checks(locate_store(store), "all", now=FIXTURE_NOW,
                            writer_attached=True, wal=watch)
    finally:
        watch.close()
    assert report.state is State.OK, [r.details for r in report.results]
    assert database.read_bytes() == before
    assert {p.name for p in database.parent.iterdir()} == {"stepflow.db"}
