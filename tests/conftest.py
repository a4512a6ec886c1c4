"""Shared fixtures: copies of the real fixture store, a demo writer in a separate
process, a frozen clock, and snapshot SVGs kept in the top-level snapshots/ folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, TypeVar

import pytest
import pytest_textual_snapshot

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO.parent / "shared" / "fixtures" / "stepflow-midrun"
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
    """Copy a storage root and make it writable (the shared fixture is read-only;
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
    if not FIXTURE.is_dir():
        pytest.fail(f"the shared fixture is missing: {FIXTURE}")
    return copy_store(FIXTURE, tmp_path / "storage")


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
