"""Database health as scripts see it: --once figures, --events checkpoint events,
--check exit codes. Writers run in separate processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

from conftest import FIXTURE, wait_for

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


def test_check_passes_on_the_fixture(recent_fixture_store):
    result = stepflow_top(str(recent_fixture_store), "--check", "--json")
    assert result.returncode == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert {c["name"] for c in document["checks"]} >= {"quick_check", "foreign_key_check",
                                                         "orphan_rows", "execution_totals"}


def test_check_full_finds_a_corrupted_index_and_exits_1(fixture_store):
    corrupt_copy(fixture_store)
    result = stepflow_top(str(fixture_store), "--check", "--full")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ integrity_check" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    document = json.loads(stepflow_top(str(fixture_store), "--check", "--full", "--json").stdout)
    integrity = next(c for c in document["checks"] if c["name"] == "integrity_check")
    assert integrity["ok"] is False and integrity["details"]


def test_check_on_a_missing_store_exits_2(tmp_path):
    result = stepflow_top(str(tmp_path / "none"), "--check")
    assert result.returncode == 2 and "no database" in result.stderr


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
                     ["stuck\x1b[2J"])  # totals now disagree with its step rows
    result = stepflow_top(str(fixture_store), "--check")
    assert result.returncode == 1
    assert "stuck\\x1b[2J" in result.stdout and "\x1b" not in result.stdout
