"""Who has the database open: holders of fcntl locks on the database file and its
-shm, read by the probe process, with stepflow-top's own processes left out. Every
writer here runs in its own process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import wait_for
from stepflow_top.wal import locks
from stepflow_top.wal.locks import Holder, file_locks, is_monitor, parse_proc_locks
from stepflow_top.wal.probe import Probe
from wal_writer import WalWriter

HOLDER_SCRIPT = textwrap.dedent("""\
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[-1], isolation_level=None)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the WAL index
    print("ready", flush=True)
    sys.stdin.read()  # holds the connection until stdin closes
""")


class Holding:
    """A process that holds an idle connection to ``db``, started as ``argv`` + [db]."""

    def __init__(self, argv: list[str], db: Path) -> None:
        self.proc = subprocess.Popen([*argv, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def test_writer_attached_until_it_is_killed(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    with WalWriter(db) as w, Probe() as probe:
        w.cmd("open 1000")
        w.cmd("write 3")
        s = probe.sample(db)
        assert s.locks_readable and s.writer_attached is True
        assert s.writer_pids == (w.proc.pid,)
        [holder] = s.holders
        assert holder.command is not None and "wal_writer.py" in holder.command
        os.kill(w.proc.pid, signal.SIGKILL)
        w.proc.wait()
        s = probe.sample(db)
        assert s.wal_exists and s.shm_exists  # a crash leaves them behind
        assert s.holders == () and s.writer_attached is False


def test_clean_close_and_own_connection(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with WalWriter(db) as w, Probe() as probe:
        w.cmd("open 1000")
        w.cmd("write 3")
        w.cmd("close")  # the last connection: -wal and -shm are deleted
        s = probe.sample(db)
        assert not s.shm_exists and s.wal_mode is True
        assert s.locks_readable and s.writer_attached is False

        w.cmd("open 1000")
        own = sqlite3.connect(db, isolation_level=None)  # this process holds it too
        try:
            own.execute("SELECT count(*) FROM t").fetchall()
            assert probe.sample(db).writer_pids == (w.proc.pid,)
            w.cmd("close")
            s = probe.sample(db)
            assert s.shm_exists and s.writer_attached is False  # we are stepflow-top
            assert probe.sample(db, exclude=()).writer_pids == (os.getpid(),)
        finally:
            own.close()


def test_rollback_journal_gives_no_answer(tmp_path: Path) -> None:
    """A rollback-journal connection holds no lock between transactions: unknowable."""
    db = tmp_path / "r.db"
    with WalWriter(db) as w, Probe() as probe:
        w.cmd("open 1000")
        w.cmd("sql PRAGMA journal_mode=DELETE")
        w.cmd("write 2")
        s = probe.sample(db)
        assert s.wal_mode is False and s.locks_readable
        assert s.writer_attached is None


def test_monitors_are_left_out_and_writers_are_not(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    fake = tmp_path / "bin" / "stepflow-top"  # a console script by that name
    fake.parent.mkdir()
    fake.write_text(HOLDER_SCRIPT)
    with WalWriter(db) as w, Probe() as probe:
        w.cmd("open 1000")
        w.cmd("write 1")
        monitor = Holding([sys.executable, str(fake)], db)
        writer = Holding([sys.executable, str(fake), "--demo-writer"], db)
        try:
            pids = probe.sample(db).writer_pids
            assert w.proc.pid in pids and writer.proc.pid in pids
            assert monitor.proc.pid not in pids
        finally:
            monitor.close()
            writer.close()


def test_the_demo_writer_is_a_service(writer) -> None:
    with Probe() as probe:
        def attached():
            sample = probe.sample(writer.database)
            return sample if sample.holders else None

        s = wait_for(attached)
    assert s.writer_attached is True
    [holder] = [h for h in s.holders if h.pid == writer.process.pid]
    assert holder.command is not None and "stepflow_top.demo.writer" in holder.command


@pytest.mark.parametrize("argv, monitor", [
    (["/v/bin/python", "/v/bin/stepflow-top", "/srv/storage"], True),
    (["/v/bin/stepflow-top", "--events", "."], True),
    (["python3", "-m", "stepflow_top", "--once"], True),
    (["python3", "-X", "dev", "-mstepflow_top"], True),
    (["/usr/bin/python3.12", "-P", "-m", "stepflow_top.wal.probe"], True),
    (["python", "-m", "stepflow_top.demo.writer", "/tmp/live"], False),
    (["/v/bin/python", "/v/bin/stepflow-top", "--demo-writer", "/tmp/live"], False),
    (["stepflow-top", "--demo-w=/tmp/live"], False),
    (["python", "-m", "stepflow_top", "--demo-writer", "d"], False),
    (["python", "app.py"], False),
    (["python", "-c", "import stepflow_top"], False),
    (["vim", "stepflow-top"], False),
    ([], False),
])
def test_is_monitor(argv: list[str], monitor: bool) -> None:
    assert is_monitor(argv) is monitor


def test_proc_locks_lines() -> None:
    text = (
        "1: POSIX  ADVISORY  READ 42 fe:01:77 128 128\n"
        "2: OFDLCK ADVISORY  WRITE -1 fe:01:77 0 EOF\n"
        "3: FLOCK  ADVISORY  WRITE 9 fe:01:77 0 EOF\n"
        "3: -> POSIX  ADVISORY  WRITE 43 fe:01:77 120 120\n"
        "4: POSIX  ADVISORY  READ 0 08:10:5 1073741826 1073742335\n"
        "garbage line\n"
    )
    records = parse_proc_locks(text)
    assert [(r.pid, r.dev, r.ino, r.shared) for r in records] == [
        (42, (0xFE, 1), 77, True), (-1, (0xFE, 1), 77, False), (0, (8, 16), 5, True)]
    assert records[1].covers(1 << 40) and records[0].covers(128) and not records[0].covers(127)


def _writer_holding(db: Path) -> WalWriter:
    w = WalWriter(db)
    w.cmd("open 1000")
    w.cmd("write 1")
    return w


def _targets(db: Path):
    return (str(db), os.stat(db)), (f"{db}-shm", os.stat(f"{db}-shm"))


def test_f_getlk_when_proc_locks_is_unreadable(tmp_path: Path, monkeypatch) -> None:
    """This process holds no connection to ``db``: opening it for F_GETLK is safe."""
    db = tmp_path / "g.db"
    monkeypatch.setattr(locks, "_read_proc_locks", lambda: None)
    with _writer_holding(db) as w:
        report = file_locks(*_targets(db))
        assert report.readable and [h.pid for h in report.holders] == [w.proc.pid]
        # F_GETLK names one holder: when it is left out, others may hide behind it.
        hidden = file_locks(*_targets(db), exclude=[w.proc.pid])
        assert not hidden.readable and hidden.holders == ()


def test_overlay_device_numbers_fall_back_to_the_inode(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "o.db"
    with _writer_holding(db) as w:
        with open("/proc/locks") as f:  # not the database: no lock of ours is touched
            real = f.read()
        ino = os.stat(f"{db}-shm").st_ino
        moved = "\n".join(line.replace(line.split()[5], f"00:99:{ino}")
                          for line in real.splitlines() if f":{ino} " in line)
        monkeypatch.setattr(locks, "_read_proc_locks", lambda: moved)
        report = file_locks(None, _targets(db)[1])
        assert report.readable and [h.pid for h in report.holders] == [w.proc.pid]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -p (root or user namespaces)")
def test_holder_outside_the_pid_namespace(tmp_path: Path) -> None:
    """A probe in its own pid namespace (a container's view) sees the writer as pid 0:
    the kernel's locks_translate_pid cannot name it there."""
    db = tmp_path / "ns.db"
    with _writer_holding(db):
        out = subprocess.run(
            ["unshare", "-p", "-f", "--mount-proc", sys.executable, "-P", "-m",
             "stepflow_top.wal.probe"],
            input=json.dumps({"path": str(db), "exclude": []}) + "\n",
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    sample = json.loads(out)["sample"]
    assert sample["locks_readable"] and sample["holders"] == [[0, None]]
    assert Holder(0).outside_namespace


# -- LockWatch: /proc/locks read again only when it may say something new ----------------
def _counting_readings(monkeypatch) -> list[int]:
    readings: list[int] = []
    real = locks._read_proc_locks

    def counted():
        readings.append(1)
        return real()

    monkeypatch.setattr(locks, "_read_proc_locks", counted)
    return readings


def test_a_lock_reading_is_reused_until_it_is_max_age_old(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "r.db"
    readings = _counting_readings(monkeypatch)
    now = [0.0]
    watch = locks.LockWatch(max_age=2.0, clock=lambda: now[0])
    with _writer_holding(db) as w:
        first = watch.report(*_targets(db))
        assert [h.pid for h in first.holders] == [w.proc.pid] and len(readings) == 1
        now[0] = 1.9
        assert watch.report(*_targets(db)) == first and len(readings) == 1
        now[0] = 2.0
        assert watch.report(*_targets(db)) == first and len(readings) == 2


def test_a_service_that_dies_is_seen_at_once_however_young_the_reading(
        tmp_path: Path, monkeypatch) -> None:
    """F_GETLK finds the dead service's locks gone: /proc/locks is read again at once."""
    db = tmp_path / "d.db"
    readings = _counting_readings(monkeypatch)
    watch = locks.LockWatch(max_age=3600.0)
    with _writer_holding(db) as w:
        assert [h.pid for h in watch.report(*_targets(db)).holders] == [w.proc.pid]
        os.kill(w.proc.pid, signal.SIGKILL)
        w.proc.wait()
        assert watch.report(*_targets(db)).holders == ()
        assert len(readings) == 2


def test_a_probe_answers_without_a_new_reading_between_commits(tmp_path: Path) -> None:
    """The probe child keeps a LockWatch: a writer committing keeps its holder named."""
    db = tmp_path / "p.db"
    with _writer_holding(db) as w, Probe() as probe:
        for _ in range(3):
            w.cmd("write 1")
            assert probe.sample(db).writer_pids == (w.proc.pid,)
