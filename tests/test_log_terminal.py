"""The pager key in a real terminal: tmux runs stepflow-top on a copy of the fixture,
``o`` suspends the app, the pager reads the log on its standard input, and the app
takes the terminal back. (The pilot's headless driver cannot suspend.)"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

SOCKET = f"stepflow-top-log-{uuid.uuid4().hex[:8]}"
SHELL_BUILD = "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True,
                          check=False).stdout


def screen_until(predicate, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = tmux("capture-pane", "-p", "-t", "log")
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"screen never matched within {timeout}s; last screen:\n{text}")
        time.sleep(0.1)


@pytest.fixture
def terminal():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    yield
    tmux("kill-server")
    (Path(f"/tmp/tmux-{os.getuid()}") / SOCKET).unlink(missing_ok=True)


def test_o_pages_the_log_and_the_app_comes_back(terminal, fixture_store, tmp_path):
    log = next((fixture_store / "executions" / SHELL_BUILD).glob("step_2_*.log"))
    paged = tmp_path / "paged"
    pager = (f"{shlex.quote(sys.executable)} -c 'import shutil, sys; "
             f"shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], \"wb\"))' {paged}")
    command = (f"PAGER={shlex.quote(pager)} {shlex.quote(sys.executable)} -m stepflow_top "
               f"{shlex.quote(str(fixture_store))}; sleep 30")
    tmux("new-session", "-d", "-s", "log", "-x", "100", "-y", "30", command)
    screen_until(lambda s: "3 executions" in s and "✓ completed" in s)
    tmux("send-keys", "-t", "log", "Down", "Enter")  # newest first: shell-build is second
    screen_until(lambda s: "Model Training" in s)
    tmux("send-keys", "-t", "log", "Down", "Down", "Enter")
    screen_until(lambda s: "Epoch 5/5" in s and "lines," in s)
    tmux("send-keys", "-t", "log", "o")
    deadline = time.monotonic() + 30
    while not (paged.exists() and paged.read_bytes() == log.read_bytes()):
        assert time.monotonic() < deadline, "the pager never got the log"
        time.sleep(0.1)
    screen_until(lambda s: "Epoch 5/5" in s and "lines," in s)  # the app is back
    tmux("send-keys", "-t", "log", "q")
    screen_until(lambda s: "Epoch" not in s)
