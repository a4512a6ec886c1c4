"""A real-terminal smoke test: tmux runs ``stepflow-top --demo`` at 80x24,
``send-keys`` drives it and ``capture-pane`` reads the screen, as a user would."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

import pytest

SOCKET = f"stepflow-top-test-{uuid.uuid4().hex[:8]}"  # a private tmux server


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True,
                          check=False).stdout


def screen_until(session: str, predicate, timeout: float = 30.0) -> str:
    """Capture the pane until ``predicate(text)`` holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        text = tmux("capture-pane", "-p", "-t", session)
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"screen never matched within {timeout}s; last screen:\n{text}")
        time.sleep(0.1)


@pytest.fixture
def session():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    name = "smoke"
    command = f"{sys.executable} -m stepflow_top --demo --speed 4; echo EXIT=$?; sleep 30"
    tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
    yield name
    tmux("kill-server")


def test_demo_in_a_real_terminal_drills_down_and_quits_cleanly(session):
    def table_with_a_row(text: str) -> bool:
        lines = text.splitlines()
        header = next((i for i, line in enumerate(lines) if "Current step" in line), None)
        return header is not None and any(
            line.strip()[:1] in "●✓✗⏸…" and line.strip() for line in lines[header + 1:])

    screen = screen_until(session, table_with_a_row)
    assert "LIVE" in screen and "Status" in screen  # the executions table at 80x24
    tmux("send-keys", "-t", session, "Enter")
    screen_until(session, lambda s: "Steps" in s and "Artifacts" in s)
    tmux("send-keys", "-t", session, "Escape")
    screen_until(session, lambda s: "sort:" in s)
    tmux("send-keys", "-t", session, "2")
    screen_until(session, lambda s: "WAL" in s and "Database" in s)
    tmux("send-keys", "-t", session, "q")
    screen_until(session, lambda s: "EXIT=0" in s)
