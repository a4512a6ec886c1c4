"""The probe subprocess, and the lock-loss regression it exists for (SQLITE_WAL.md §3)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from stepflow_top.wal.integrity import connect_readonly
from stepflow_top.wal.probe import (
    Probe,
    ProbeError,
    WalSample,
    parse_request,
    sample_once,
)
from wal_writer import WalWriter


def _hold_snapshot(db: Path) -> sqlite3.Connection:
    """A read transaction in this process, its SELECT fully fetched."""
    conn = connect_readonly(str(db))
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM t").fetchall()
    return conn


def _my_proc_locks() -> list[str]:
    """This process's locks as /proc/locks lists them, without the leading ordinal
    (it shifts whenever any other process on the machine takes or drops a lock)."""
    with open("/proc/locks") as f:  # /proc/locks is not the -shm: no lock is touched
        return sorted(line.split(":", 1)[1].strip() for line in f
                      if f" {os.getpid()} " in line)


def test_probe_keeps_our_snapshot_pinned(tmp_path: Path) -> None:
    """Regression: sampling while this process holds a snapshot must not drop its
    -shm read lock, so a writer's RESTART checkpoint stays blocked (busy=1)."""
    db = tmp_path / "pin.db"
    with WalWriter(db) as w:
        w.cmd("open 0 100")  # short busy timeout: RESTART gives up quickly
        w.cmd("write 5")
        reader = _hold_snapshot(db)
        try:
            w.cmd("write 5")  # the WAL moves past our read mark
            locks_before = _my_proc_locks()
            assert locks_before
            with Probe() as probe:  # the child starts while the snapshot is held
                for _ in range(5):
                    s = probe.sample(db)
                    assert os.getpid() in s.pinning_readers
                    assert s.pending and s.pending >= 5
            assert _my_proc_locks() == locks_before
            busy, _log, _done = w.cmd("ckpt RESTART")["result"]
            assert busy == 1, "a probe sample dropped this process's read lock"
            assert reader.execute("SELECT count(*) FROM t").fetchall() == [(5,)]
        finally:
            reader.execute("COMMIT")
            reader.close()
        busy, log, done = w.cmd("ckpt RESTART")["result"]
        assert busy == 0 and log == done


def test_reading_shm_in_process_would_drop_the_lock(tmp_path: Path) -> None:
    """The hazard itself (why the probe is a separate process): one open()/close() of
    the -shm here releases our read lock and RESTART runs under the live snapshot."""
    db = tmp_path / "hazard.db"
    with WalWriter(db) as w:
        w.cmd("open 0 100")
        w.cmd("write 5")
        reader = _hold_snapshot(db)
        try:
            w.cmd("write 5")
            with open(f"{db}-shm", "rb") as f:
                f.read(136)
            busy, _log, _done = w.cmd("ckpt RESTART")["result"]
            assert busy == 0
        finally:
            reader.close()


def test_sample_fields_match_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with WalWriter(db) as w, Probe() as probe:
        w.cmd("open 0")
        w.cmd("write 4 2000")
        s = probe.sample(db)
        assert s.db_exists and s.wal_exists and s.shm_exists and not s.errors
        assert s.db_path == str(db.resolve())
        assert s.wal_mode is True and s.page_size == 4096
        assert s.backfilled == 0 and s.frames == s.pending
        assert s.wal_size == s.live_wal_bytes  # no reset yet: file = live bytes
        busy, log, done = w.cmd("ckpt PASSIVE")["result"]
        s2 = probe.sample(db)
        assert (s2.frames, s2.backfilled, s2.pending) == (log, done, 0)
        assert s2.salt1 == s.salt1 and s2.checkpoint_seq == s.checkpoint_seq
        assert s2.monotonic >= s.monotonic
        assert s2.db_size and s2.db_size >= 4096 * 2  # pages were copied back
        wal = s2.wal_dict()
        assert wal["exists"] and wal["frames"] == log and wal["readers"] == []
        assert s2.database_dict()["page_count"] == s2.page_count
        # The wire format round-trips.
        assert WalSample.from_json(s2.to_json()) == s2
        w.cmd("close")
        s3 = probe.sample(db)
        assert not s3.wal_exists and not s3.shm_exists and s3.db_exists
        assert s3.wal_dict()["frames"] is None and s3.pending == 0


def test_probe_restarts_a_dead_child_and_reports_failures(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with Probe() as probe:
        first = probe.sample(db)
        assert not first.db_exists and not first.wal_exists
        pid = probe.pid
        assert pid is not None
        os.kill(pid, 9)  # our own child
        again = probe.sample(db)
        assert probe.pid not in (None, pid) and not again.db_exists
    with pytest.raises(ProbeError, match="closed"):
        probe.sample(db)
    with pytest.raises(ProbeError):
        Probe(python=str(tmp_path / "no-such-python")).sample(db)


def test_sample_once_and_odd_files(tmp_path: Path) -> None:
    db = tmp_path / "odd.db"
    db.write_bytes(b"not a database at all" * 10)
    Path(f"{db}-wal").write_bytes(b"")
    Path(f"{db}-shm").write_bytes(bytes(200))
    s = sample_once(db)
    assert s.db_exists and s.db_header is None
    assert any("not a SQLite" in e for e in s.errors)
    assert s.wal_exists and s.wal_size == 0 and s.wal_header is None
    assert s.shm_exists and s.shm_header is None  # zeroed -shm: uninitialised


@pytest.mark.parametrize("trap", ["", "-wal", "-shm"])
def test_a_fifo_is_reported_not_waited_on(tmp_path: Path, trap: str) -> None:
    """A FIFO planted at the database, -wal or -shm path would block a plain open()
    for ever: the sample comes back within the probe's timeout with the reason."""
    db = tmp_path / "stepflow.db"
    with WalWriter(db) as w:
        w.cmd("open 1000")
        w.cmd("write 2")
        w.cmd("close")
    target = Path(f"{db}{trap}")
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    with Probe(timeout_s=5.0) as probe:
        s = probe.sample(db)
    what = {"": "a database file", "-wal": "a WAL file", "-shm": "a wal-index (-shm) file"}
    assert f"stepflow.db{trap} is a FIFO, not {what[trap]}" in s.errors
    assert s.writer_attached is (None if trap == "" else False)


def test_a_device_is_not_read(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with WalWriter(db) as w:
        w.cmd("open 1000")
        w.cmd("write 2")
        w.cmd("close")
    os.symlink("/dev/zero", f"{db}-wal")
    s = sample_once(db)
    assert "d.db-wal is a character device, not a WAL file" in s.errors
    assert s.wal_header is None and s.wal_size is None and s.db_header is not None


def test_request_forms() -> None:
    assert parse_request("/x/stepflow.db") == ("/x/stepflow.db", [])
    assert parse_request('"/x/a b.db"') == ("/x/a b.db", [])
    assert parse_request('{"path": "/x/s.db", "exclude": [1, 2]}') == ("/x/s.db", [1, 2])
    assert parse_request('{"path": "/x/s.db"}') == ("/x/s.db", [])
    for bad in ('{"exclude": []}', '{"path": "/x", "exclude": [true]}',
                '{"path": "/x", "exclude": "1"}', '{"path": 3}', '{not json'):
        with pytest.raises(ValueError):
            parse_request(bad)


def test_the_child_answers_every_request_form(tmp_path: Path) -> None:
    """Old callers send a path or a JSON string; new ones an object. A bad request
    gets an error answer and the child keeps serving."""
    db = str(tmp_path / "none.db")
    lines = [db, json.dumps(db), json.dumps({"path": db, "exclude": [1]}), "{bad", db]
    out = subprocess.run(
        [sys.executable, "-P", "-m", "stepflow_top.wal.probe"], input="\n".join(lines) + "\n",
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    replies = [json.loads(line) for line in out]
    assert [r["ok"] for r in replies] == [True, True, True, False, True]
    assert all(r["sample"]["db_path"] == db for r in replies if r["ok"])
