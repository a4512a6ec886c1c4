"""Database health as scripts see it: --once figures, --events checkpoint events,
--check as a monitoring plugin. Writers run in separate processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest
from conftest import FIXTURE, wait_for
from stepflow_top.wal.probe import WalSample
from test_cli import stepflow_top

CYCLE_WRITER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
print("ready", flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "commit":
        conn.execute("INSERT INTO filler VALUES (randomblob(20000))")
    elif command == "truncate":
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elif command == "passive":
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    print("done", flush=True)
"""


class CycleWriter:
    """A writer process that does one thing per line it is sent, and says done."""

    def __init__(self, database):
        database.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, "-c", CYCLE_WRITER, str(database)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def do(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "done"

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def test_once_json_wal_figures_agree_with_the_files(fixture_store):
    database = fixture_store / "database" / "stepflow.db"
    writer = CycleWriter(database)
    try:
        for _ in range(5):
            writer.do("commit")
        document = json.loads(stepflow_top(str(fixture_store), "--once", "--json").stdout)
        wal_size = os.stat(str(database) + "-wal").st_size
        db_size = os.stat(database).st_size
    finally:
        writer.close()
    db, wal = document["database"], document["wal"]
    assert db["path"] == str(database)
    assert db["size_bytes"] == db_size
    # The page count is the database's logical size (the WAL index's nPage): pages
    # still in the WAL make it larger than the file until a checkpoint copies them.
    assert db["page_count"] * db["page_size"] > db_size
    assert wal["exists"] is True and wal["size_bytes"] == wal_size
    # SQLITE_WAL.md §1: a 32-byte header, then frames of 24 bytes + one page each.
    assert wal["frames"] == (wal_size - 32) // (db["page_size"] + 24) > 0
    assert wal["pending"] == wal["frames"] - wal["backfilled"]
    assert wal["readers"] == []  # an idle writer holds no read mark


def test_events_count_every_wal_reset_and_truncate(tmp_path):
    database = tmp_path / "database" / "stepflow.db"
    # A StepFlow schema so that --events can start.
    shutil.copytree(FIXTURE / "database", database.parent)
    os.chmod(database.parent, 0o755)
    os.chmod(database, 0o644)
    writer = CycleWriter(database)
    writer.do("commit")
    events_process = subprocess.Popen(
        [sys.executable, "-m", "stepflow_top", str(tmp_path), "--events"],
        stdout=subprocess.PIPE, text=True)
    events: list[dict] = []
    threading.Thread(target=lambda: events.extend(json.loads(l) for l in events_process.stdout),
                     daemon=True).start()

    def seen(kind: str) -> int:
        return sum(e.get("resets", 1) for e in list(events)
                   if e["type"] == kind or (e["type"] == "checkpoint" and e.get("kind") == kind))

    def truncate_cycle() -> None:
        writer.do("commit")
        writer.do("truncate")

    try:
        # The stream's first sample is its baseline and it prints nothing when it
        # starts, so cycle until a first TRUNCATE is seen; from then on it is watching.
        wait_for(lambda: truncate_cycle() or seen("truncate") >= 1, timeout=30, interval=0.2)
        first = seen("truncate")
        for cycle in range(1, 4):
            truncate_cycle()
            wait_for(lambda cycle=cycle: seen("truncate") >= first + cycle, timeout=20)
        # Resets without truncation: the next write after a complete PASSIVE
        # checkpoint restarts the WAL from its start with salt-1 + 1.
        resets_before = seen("wal_reset")
        for _ in range(3):
            writer.do("commit")
            writer.do("passive")
        writer.do("commit")
        wait_for(lambda: seen("wal_reset") >= resets_before + 3, timeout=20)
    finally:
        writer.close()
        events_process.terminate()
        events_process.wait(timeout=10)
    assert seen("truncate") == first + 3
    for event in events:
        assert isinstance(event["ts"], float)


def corrupt_copy(fixture_store):
    """Overwrite the middle of a b-tree page of the executions table's index."""
    import sqlite3

    db = fixture_store / "database" / "stepflow.db"
    conn = sqlite3.connect(db)
    root = conn.execute("SELECT rootpage FROM sqlite_master "
                        "WHERE name='idx_executions_created_at'").fetchone()[0]
    conn.close()
    with open(db, "r+b") as handle:  # the test process holds no connection now
        handle.seek((root - 1) * 4096 + 8)
        handle.write(b"\xff" * 64)
    return fixture_store


# --check is a monitoring plugin (Nagios plugin API, Monitoring Plugins guidelines):
# exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; first line "STEPFLOW <STATE> - text |
# perfdata"; perfdata items 'label'=value[UOM];[warn];[crit];[min];[max].
PERF_ITEM = re.compile(r"^'?[^'= ]+'?=(U|-?[0-9.]+)(B|s|%|c)?(;[^; ]*){0,4}$")

HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM executions").fetchall()
print("ready", flush=True)
sys.stdin.read()
"""


class ServiceHolder:
    """A process that keeps the database open, as the running service does."""

    def __init__(self, root):
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(root / "database" / "stepflow.db")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


def check(root, *args):
    result = stepflow_top(str(root), "--check", *args)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def first_line(result):
    line = result.stdout.splitlines()[0]
    text, _, perf = line.partition(" | ")
    return text, perf.split()


def test_check_passes_on_the_fixture_beside_its_service(recent_fixture_store):
    holder = ServiceHolder(recent_fixture_store)
    try:
        result = check(recent_fixture_store)
        document = json.loads(check(recent_fixture_store, "--json").stdout)
    finally:
        holder.close()
    assert result.returncode == 0, result.stdout
    text, perf = first_line(result)
    assert text == "STEPFLOW OK - 3 executions, 1 running, WAL " + text.split("WAL ")[1]
    assert all(PERF_ITEM.match(item) for item in perf), perf
    labels = dict(item.split("=", 1) for item in perf)
    assert labels["executions"] == "3;;;0" and labels["running"] == "1;;;0"
    assert labels["lost"] == "0;0;;0"
    assert labels["db_bytes"].endswith("B;;;0") and labels["wal_bytes"].endswith("B;;;0")
    assert document["state"] == "OK" and document["exit_code"] == 0 and document["ok"]
    assert document["summary"] == result.stdout.splitlines()[0]
    names = [c["name"] for c in document["checks"]]
    assert names == ["quick_check", "foreign_key_check", "orphan_rows", "execution_totals",
                     "lost_runs", "log_files", "wal"]
    assert all(c["severity"] == "OK" for c in document["checks"])
    assert document["perfdata"]["executions"] == 3


def test_an_ordinary_failed_run_and_a_silent_step_are_no_alarm(recent_fixture_store):
    """Measured before: exit 1 for a failed run whose last step stayed running (an
    implicit end, which the service never saves) and for a step with no log file."""
    import sqlite3

    root = recent_fixture_store
    with sqlite3.connect(root / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET status = 'failed', exit_code = -15, "
                     "total_steps = 2, completed_steps = 1 WHERE name = 'data-report'")
    conn.close()
    next((root / "executions").glob("*/step_4_*.log")).unlink()
    holder = ServiceHolder(root)
    try:
        result = check(root)
    finally:
        holder.close()
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("STEPFLOW OK - 3 executions, 0 running")


@pytest.mark.skipif(not hasattr(WalSample, "writer_attached"),
                    reason="needs WalSample.writer_attached (helper A's probe change)")
def test_a_run_left_by_a_service_that_is_gone_is_a_lost_run(recent_fixture_store):
    result = check(recent_fixture_store)
    assert result.returncode == 1, result.stdout
    text, perf = first_line(result)
    assert text.startswith("STEPFLOW WARNING - lost_runs (1); 3 executions, 0 running, 1 lost")
    assert "lost=1;0;;0" in perf
    assert "    WARNING execution 77c5563f" in result.stdout


def test_a_store_not_in_wal_mode_is_a_warning(recent_fixture_store):
    import sqlite3

    with sqlite3.connect(recent_fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    result = check(recent_fixture_store)
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("STEPFLOW WARNING - wal (1); 3 executions")
    assert re.search(r"^! wal +WARNING", result.stdout, re.MULTILINE)
    assert "not in WAL mode" in result.stdout


def test_check_full_finds_a_corrupted_index_and_is_critical(fixture_store):
    corrupt_copy(fixture_store)
    result = check(fixture_store, "--full")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("STEPFLOW CRITICAL - integrity_check (")
    assert re.search(r"^✗ integrity_check +CRITICAL ", result.stdout, re.MULTILINE)
    document = json.loads(check(fixture_store, "--full", "--json").stdout)
    assert document["state"] == "CRITICAL" and document["exit_code"] == 2
    integrity = next(c for c in document["checks"] if c["name"] == "integrity_check")
    assert integrity["severity"] == "CRITICAL" and integrity["findings"]
    assert all(f["severity"] == "CRITICAL" for f in integrity["findings"])


def test_check_on_a_missing_store_is_unknown(tmp_path):
    result = check(tmp_path / "none")
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"STEPFLOW UNKNOWN - no database at {tmp_path / 'none'}")
    assert "executions=U" in lines[0]
    document = json.loads(check(tmp_path / "none", "--json").stdout)
    assert document["state"] == "UNKNOWN" and document["exit_code"] == 3
    assert "no database" in document["error"]


def test_the_first_line_of_runs_that_did_not_complete():
    from stepflow_top.cli.check import first_line
    from stepflow_top.live.checks import CheckReport
    from stepflow_top.wal.integrity import CheckResult

    cancelled = CheckReport([CheckResult.of("quick_check", [], 0.1),
                             CheckResult.stopped("orphan_rows", "cancelled", "cancelled")])
    assert cancelled.state.exit_code == 3
    assert first_line(cancelled) == (
        "STEPFLOW UNKNOWN - cancelled | executions=U;;;0 running=U;;;0 lost=U;0;;0 "
        "wal_bytes=U;;;0 wal_live_bytes=U;;;0 db_bytes=U;;;0")
    stopped = CheckReport([
        CheckResult.stopped("lost_runs", "timeout", "stopped at the 5 s deadline"),
        CheckResult.stopped("log_files", "cancelled", "cancelled")])
    assert first_line(stopped).startswith(
        "STEPFLOW UNKNOWN - lost_runs could not run: stopped at the 5 s deadline | ")


def test_events_report_scheduled_integrity_checks(fixture_store):
    result = stepflow_top(str(fixture_store), "--events", "--seconds", "3",
                          "--integrity-every", "0.5")
    assert result.returncode == 0, result.stderr
    checks = [json.loads(line) for line in result.stdout.splitlines()]
    checks = [e for e in checks if e["type"] == "integrity"]
    assert len(checks) >= 2
    assert all(e["ok"] is True and isinstance(e["ts"], float) for e in checks)
    assert [c["name"] for c in checks[0]["checks"]] == ["quick_check", "foreign_key_check"]


def test_check_prints_names_from_the_store_literally(fixture_store):
    import sqlite3

    with sqlite3.connect(fixture_store / "database" / "stepflow.db") as conn:
        conn.execute("UPDATE executions SET status='completed', name=? WHERE status='pending'",
                     ["stuck\x1b[2J | x=1"])  # totals now disagree with its step rows
    conn.close()
    result = check(fixture_store)
    assert result.returncode == 2  # rows that contradict each other
    assert "stuck\\x1b[2J \\x7c x=1" in result.stdout and "\x1b" not in result.stdout
    # No store text can start performance data: the only "|" is the first line's.
    assert result.stdout.count("|") == 1
