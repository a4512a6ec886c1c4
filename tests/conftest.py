"""Shared fixtures: copies of the real fixture store, a demo writer in a separate
process, a frozen clock, and snapshot SVGs kept in the top-level snapshots/ folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, TypeVar

import pytest
import pytest_textual_snapshot

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "stepflow-midrun"  # what the real service wrote
FROZEN_NOW = datetime(2026, 11, 21, 19, 56, 10)
T = TypeVar("T")


class ProjectSVGExtension(pytest_textual_snapshot.SVGImageExtension):
    """Snapshot SVGs go to <repo>/snapshots/<test file>/ instead of __snapshots__."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(REPO / "snapshots" / Path(test_location.filepath).stem)


# pytest-textual-snapshot looks the extension up by this module-level name (1.1.0).
pytest_textual_snapshot.SVGImageExtension = ProjectSVGExtension


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory, monkeypatch):
    """Checkpoint history goes to the user's state directory: keep tests out of it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


def copy_store(source: Path, target: Path) -> Path:
    """Copy a storage root and make it writable (the fixture may be checked out read-only;
    a WAL reader must be able to create -wal/-shm beside the database)."""
    shutil.copytree(source, target)
    for folder, _dirs, files in os.walk(target):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return target


@pytest.fixture
def fixture_store(tmp_path: Path) -> Path:
    """A fresh copy of the stepflow-midrun fixture (what the real service wrote)."""
    return copy_store(FIXTURE, tmp_path / "storage")


FIXTURE_TABLES = {
    "executions": ("created_at", "started_at", "completed_at"),
    "steps": ("created_at", "started_at", "completed_at"),
    "artifacts": ("created_at",),
}


def restamp_store(root: Path, newest: datetime) -> timedelta:
    """Shift every stored timestamp and log-file time of a copied store by one delta, so
    that its newest timestamp becomes ``newest`` (local naive time, as the service
    writes). For tests that run the CLI against the wall clock: the copy is then as
    old relative to now as the fixture was when the real service wrote it.
    Returns the delta applied."""
    import sqlite3

    database = root / "database" / "stepflow.db"
    with sqlite3.connect(database) as conn:
        stamps = [
            value for table, columns in FIXTURE_TABLES.items() for column in columns
            for (value,) in conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
        ]
        delta = newest - max(datetime.fromisoformat(s) for s in stamps)
        conn.create_function(
            "shift", 1, lambda s: None if s is None
            else (datetime.fromisoformat(s) + delta).isoformat(timespec="microseconds"))
        for table, columns in FIXTURE_TABLES.items():
            conn.execute(f"UPDATE {table} SET " + ", ".join(f"{c} = shift({c})" for c in columns))
    conn.close()
    for log in (root / "executions").rglob("*.log"):
        mtime = log.stat().st_mtime + delta.total_seconds()
        os.utime(log, (mtime, mtime))
    return delta


@pytest.fixture
def recent_fixture_store(fixture_store: Path) -> Path:
    """The fixture re-stamped so that its newest save was 5 seconds ago (wall clock)."""
    restamp_store(fixture_store, datetime.now() - timedelta(seconds=5))
    return fixture_store


async def until(pilot, predicate, timeout: float = 30.0):
    """Let a pilot-driven app run until ``predicate()`` is truthy (a widget not mounted
    yet counts as not yet); fail after ``timeout`` seconds."""
    from textual.css.query import NoMatches

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except NoMatches:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {timeout}s: {predicate.__doc__ or predicate}")
        await pilot.pause(0.05)


class Tmux:
    """A private tmux server (its own socket) for real-terminal tests."""

    def __init__(self) -> None:
        self.socket = f"stepflow-top-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=False).stdout

    def screen_until(self, target: str, predicate, timeout: float = 30.0) -> str:
        """Capture ``target``'s pane until ``predicate(text)`` holds; fail after
        ``timeout`` seconds with the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            text = self("capture-pane", "-p", "-t", target)
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"screen never matched within {timeout}s; last screen:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        self("kill-server")
        (Path(f"/tmp/tmux-{os.getuid()}") / self.socket).unlink(missing_ok=True)


@pytest.fixture
def tmux():
    """A private tmux server, killed after the test (skipped where tmux is missing)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    server = Tmux()
    yield server
    server.close()


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


class AttachedService:
    """A process that has a store's database open, as the service does between saves
    (a WAL connection keeps its shared lock on ``-shm`` until it closes): the monitor
    then sees a service attached. It reads, never writes. ``kill()`` is SIGKILL."""

    SCRIPT = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('SELECT count(*) FROM executions').fetchall()\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )

    def __init__(self, database: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(database)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # it closes its connection and exits
            self.process.wait(timeout=10)


@pytest.fixture
def attached_service(fixture_store: Path):
    """The fixture store with a process holding it open (a stand-in for the service)."""
    service = AttachedService(fixture_store / "database" / "stepflow.db")
    yield service
    service.stop()


class WriterProcess:
    """The demo writer running in its own process against ``root``."""

    def __init__(self, root: Path, *, speed: float = 8.0, seed: int = 7) -> None:
        self.root = root
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepflow_top.demo.writer", str(root),
             "--speed", str(speed), "--seed", str(seed)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    @property
    def database(self) -> Path:
        return self.root / "database" / "stepflow.db"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def writer(tmp_path: Path):
    """A demo writer in a separate process, stopped after the test."""
    process = WriterProcess(tmp_path / "live")
    wait_for(lambda: process.database.exists())
    yield process
    process.stop()


@pytest.fixture
def service(tmp_path: Path):
    """A scripted StepFlow service (tests/service_writer.py) in a separate process, on
    ``tmp_path / "storage"``; closed after the test."""
    from service_writer import ServiceWriter

    writer = ServiceWriter(tmp_path / "storage")
    yield writer
    writer.close()
