"""DESIGN.md promises 1, 2 and 8 against real files and writers in separate processes:
nothing is held between refreshes, nothing is created beside a closed store, and a
database replaced by another file is followed."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import FIXTURE, FROZEN_NOW, AttachedService, copy_store, wait_for
from stepflow_top.live.refresher import Refresher, ViewRequest
from stepflow_top.store.locate import locate_store

DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"


def locks_held_by(pid: int, *paths: Path) -> list[str]:
    """Lines of /proc/locks for ``pid`` on these files (by inode)."""
    inodes = {os.stat(p).st_ino for p in paths if p.exists()}
    with open("/proc/locks") as handle:
        lines = handle.read().splitlines()
    return [line for line in lines
            if len(line.split()) > 5 and line.split()[4] == str(pid)
            and int(line.split()[5].split(":")[2]) in inodes]


def test_no_lock_is_held_between_refreshes_and_a_clean_close_deletes_the_wal(attached_service,
                                                                              fixture_store):
    database = fixture_store / "database" / "stepflow.db"
    shm = database.with_name("stepflow.db-shm")
    refresher = Refresher(locate_store(fixture_store))
    try:
        snapshot = refresher.refresh(ViewRequest(), FROZEN_NOW)
        assert snapshot.error is None and snapshot.writer.attached is True
        assert locks_held_by(attached_service.pid, database, shm)  # the service's are seen
        assert locks_held_by(os.getpid(), database, shm) == []  # ours are gone
        attached_service.stop()  # the service's clean shutdown, with us still running
        assert not database.with_name("stepflow.db-wal").exists()
        assert not shm.exists()
        after = refresher.refresh(ViewRequest(), FROZEN_NOW)
        assert after.writer.attached is False
    finally:
        refresher.close()


def test_a_closed_store_is_read_without_creating_any_file(fixture_store):
    folder = fixture_store / "database"
    before = sorted(os.listdir(folder))
    refresher = Refresher(locate_store(fixture_store))
    try:
        snapshot = refresher.refresh(ViewRequest(), FROZEN_NOW, tables=True)
        assert snapshot.error is None and snapshot.counts.executions == 3
        assert snapshot.journal_mode == "wal"
    finally:
        refresher.close()
    for mode in (["--once"], ["--once", "--json"], ["--events", "--seconds", "0.5"]):
        result = subprocess.run([sys.executable, "-m", "stepflow_top", str(fixture_store), *mode],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(folder)) == before == ["stepflow.db"]


def test_a_service_that_opens_a_closed_store_is_read_through_its_wal(fixture_store):
    refresher = Refresher(locate_store(fixture_store))
    try:
        assert len(refresher.refresh(ViewRequest(), FROZEN_NOW).executions) == 3
        database = fixture_store / "database" / "stepflow.db"
        service = AttachedService(database)
        try:
            writer = sqlite3.connect(database, isolation_level=None)  # commits into the -wal
            writer.execute("INSERT INTO executions (id, name, command, status, created_at) "
                           "VALUES ('new', 'fresh', 'x', 'pending', '2026-11-21T19:56:09')")
            snapshot = refresher.refresh(ViewRequest(), FROZEN_NOW)
            assert [e.id for e in snapshot.executions][0] == "new"
            writer.close()
        finally:
            service.stop()
    finally:
        refresher.close()


def make_store(root: Path, names: list[str]) -> Path:
    database = root / "database" / "stepflow.db"
    database.parent.mkdir(parents=True)
    conn = sqlite3.connect(database)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE executions (id TEXT PRIMARY KEY, name TEXT, command TEXT, "
                 "status TEXT, created_at TEXT, completed_at TEXT)")
    conn.executemany("INSERT INTO executions VALUES (?, ?, 'x', 'completed', ?, ?)",
                     [(n, n, f"2026-11-21T19:00:0{i}", f"2026-11-21T19:00:0{i}")
                      for i, n in enumerate(names)])
    conn.commit()
    conn.close()
    return database


def test_a_recreated_database_folder_is_followed(tmp_path):
    make_store(tmp_path, ["old-a", "old-b"])
    refresher = Refresher(locate_store(tmp_path))
    try:
        first = refresher.refresh(ViewRequest(), FROZEN_NOW)
        assert {e.name for e in first.executions} == {"old-a", "old-b"}
        shutil.rmtree(tmp_path / "database")  # an operator reset: a new, empty store
        make_store(tmp_path, ["new"])
        second = refresher.refresh(ViewRequest(), FROZEN_NOW)
        assert second.replaced is True
        assert [e.name for e in second.executions] == ["new"]
        assert second.counts.executions == 1
        assert refresher.refresh(ViewRequest(), FROZEN_NOW, force=True).replaced is False
    finally:
        refresher.close()


def test_events_say_when_the_database_was_replaced(tmp_path):
    make_store(tmp_path, ["old"])
    events = subprocess.Popen(
        [sys.executable, "-m", "stepflow_top", str(tmp_path), "--events", "--refresh", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[dict] = []
        threading.Thread(target=lambda: lines.extend(json.loads(x) for x in events.stdout),
                         daemon=True).start()
        wait_for(lambda: ping(tmp_path, lines), timeout=20, interval=0.3)  # feed is up
        shutil.rmtree(tmp_path / "database")
        make_store(tmp_path, ["fresh"])
        wait_for(lambda: any(e["type"] == "database_replaced" for e in lines), timeout=20)
    finally:
        events.terminate()
        events.wait(timeout=10)


def ping(root: Path, lines: list[dict]) -> bool:
    """Whether a run saved earlier was reported; if not, save one more (a run saved
    before the feed took its baseline is, rightly, not news)."""
    if any(e.get("name") == "ping" for e in lines):
        return True
    conn = sqlite3.connect(root / "database" / "stepflow.db")
    with conn:
        conn.execute("INSERT INTO executions VALUES (?, 'ping', 'x', 'completed', "
                     "'2026-11-21T19:01:00', '2026-11-21T19:01:00')", [f"ping-{len(lines)}-"
                                                                      f"{os.urandom(4).hex()}"])
    conn.close()
    return False



def test_a_database_reached_through_a_symlink_shows_its_real_wal(attached_service,
                                                                fixture_store, tmp_path):
    link = tmp_path / "elsewhere.db"
    link.symlink_to(fixture_store / "database" / "stepflow.db")
    paths = locate_store(link)
    assert paths.database == fixture_store / "database" / "stepflow.db"
    assert paths.root == fixture_store
    refresher = Refresher(paths)
    try:
        snapshot = refresher.refresh(ViewRequest(), FROZEN_NOW)
        assert snapshot.sample.wal_exists and snapshot.writer.attached is True
    finally:
        refresher.close()


def test_a_database_path_that_is_a_fifo_is_refused_with_one_line(tmp_path):
    database = tmp_path / "database" / "stepflow.db"
    database.parent.mkdir()
    os.mkfifo(database)  # SQLite's own open() of it would block for ever
    for mode, code in (("--once", 2), ("--events", 2), ("--check", 3)):
        result = subprocess.run([sys.executable, "-m", "stepflow_top", str(tmp_path), mode],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == code, (mode, result.stdout, result.stderr)
        said = result.stderr if mode != "--check" else result.stdout
        assert "is a FIFO, not a database file" in said and "Traceback" not in said


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _nobody_can_run_python() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(AS_NOBODY + ["env", sys.executable, "-c", "import stepflow_top"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _nobody_can_run_python(),
                    reason="needs root, setpriv, and an interpreter and package that user "
                    "nobody can run (here they live under a private home folder)")
def test_a_monitoring_user_who_can_write_the_folder_leaves_no_file_in_it(tmp_path):
    """Issue 7 item 2: the monitoring user (nobody) can write database/ but not the
    database file; the service (root here) must find the folder as it left it."""
    base = Path(tempfile.mkdtemp(prefix="stepflow-top-nobody-"))
    try:
        os.chmod(base, 0o755)
        root = copy_store(FIXTURE, base / "storage")
        folder = root / "database"
        os.chmod(folder, 0o777)  # writable by the monitoring user, as with a shared group
        before = sorted(os.listdir(folder))
        as_nobody = [*AS_NOBODY, "env", f"XDG_STATE_HOME={base}/state", sys.executable, "-m",
                     "stepflow_top", str(root)]
        for mode in (["--once"], ["--once", "--json"], ["--check"],
                     ["--events", "--seconds", "0.5"]):
            result = subprocess.run(as_nobody + mode, capture_output=True, text=True,
                                    timeout=60)
            assert result.returncode in (0, 1), (mode, result.stdout, result.stderr)
        assert sorted(os.listdir(folder)) == before
        service = AttachedService(folder / "stepflow.db")  # the service starts, as root
        try:
            result = subprocess.run(as_nobody + ["--once", "--json"], capture_output=True,
                                    text=True, timeout=60)
            assert json.loads(result.stdout)["writer"]["attached"] is True
        finally:
            service.stop()
        assert sorted(os.listdir(folder)) == before  # its clean close removed its files
    finally:
        shutil.rmtree(base, ignore_errors=True)
