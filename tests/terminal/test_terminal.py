"""A real-terminal smoke test: tmux runs ``stepflow-top --demo`` at 80x24,
``send-keys`` drives it and ``capture-pane`` reads the screen, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def session(tmux):
    """``stepflow-top --demo`` at 80x24 in a private tmux server's session "smoke"."""
    command = f"{sys.executable} -m stepflow_top --demo --speed 4; echo EXIT=$?; sleep 30"
    tmux("new-session", "-d", "-s", "smoke", "-x", "80", "-y", "24", command)
    return "smoke"


def test_demo_in_a_real_terminal_drills_down_and_quits_cleanly(tmux, session):
    def table_with_a_row(text: str) -> bool:
        lines = text.splitlines()
        # At 80 columns the current-step column is headed "Step".
        header = next((i for i, line in enumerate(lines)
                       if "Status" in line and "Exit" in line), None)
        return header is not None and any(
            line.strip()[:1] in "●✓✗⏸…" and line.strip() for line in lines[header + 1:])

    screen = tmux.screen_until(session, table_with_a_row)
    assert "LIVE" in screen and "Status" in screen  # the executions table at 80x24
    tmux("send-keys", "-t", session, "Enter")
    tmux.screen_until(session, lambda s: "Steps" in s and "Artifacts" in s)
    tmux("send-keys", "-t", session, "Escape")
    tmux.screen_until(session, lambda s: "sort:" in s)
    tmux("send-keys", "-t", session, "2")
    tmux.screen_until(session, lambda s: "WAL" in s and "Database" in s)
    tmux("send-keys", "-t", session, "q")
    tmux.screen_until(session, lambda s: "EXIT=0" in s)


def test_a_terminal_hang_up_ends_the_demo_and_its_children(tmux, session):
    marker = "--speed 4.0625"  # tells this run's processes from any other
    # Through a shell, as from a login shell: the app is not the pane's own process.
    tmux("new-window", "-t", session,
         f"{sys.executable} -m stepflow_top --demo {marker}; sleep 30")
    deadline = time.monotonic() + 30
    # Started: the app and its writer (both carry the marker) and the app's probe.
    while len(running(marker)) < 2 or not running("stepflow_top.wal.probe", marker):
        assert time.monotonic() < deadline, f"the demo never started: {running(marker)}"
        time.sleep(0.1)
    pids = [pid for pid, _ in running(marker) + running("stepflow_top.wal.probe", marker)]
    tmux("kill-server")  # the terminal goes away, as in an SSH drop
    deadline = time.monotonic() + 20
    while alive := [pid for pid in pids if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"still running after hang-up: {alive}"
        time.sleep(0.1)


def running(pattern: str, parent_marker: str | None = None) -> list[tuple[int, str]]:
    """(pid, command line) of processes matching ``pattern`` (with ``parent_marker``:
    only those whose parent's command line holds it)."""
    found = []
    # -ww: whole command lines, whatever COLUMNS says (pytest sets it).
    for line in subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True,
                               text=True).stdout.splitlines():
        pid, ppid, args = line.split(None, 2)
        if pattern not in args or args.startswith("ps "):
            continue
        if parent_marker is not None:
            parent = subprocess.run(["ps", "-ww", "-o", "args=", "-p", ppid],
                                    capture_output=True, text=True).stdout
            if parent_marker not in parent:
                continue
        found.append((int(pid), args))
    return found


def test_sigterm_leaves_like_q_restoring_the_terminal_and_stopping_the_writer(tmux, session):
    marker = "--speed 4.125"
    tmux("new-window", "-t", session, "-n", "term",
         f"{sys.executable} -m stepflow_top --demo {marker}; echo EXIT=$?; sleep 30")
    tmux.screen_until(f"{session}:term", lambda s: "LIVE" in s)
    app = next(pid for pid, args in running(marker)  # not the shell that started it
               if args.startswith(sys.executable) and "demo.writer" not in args)
    writer, args = next((pid, args) for pid, args in running(marker) if "demo.writer" in args)
    root = Path(args.split("stepflow_top.demo.writer", 1)[1].split()[0])
    assert root.is_dir()
    os.kill(app, 15)  # what kill, systemd and timeout send
    screen = tmux.screen_until(f"{session}:term", lambda s: "EXIT=" in s)
    assert "EXIT=0" in screen and "LIVE" not in screen  # the alternate screen is gone
    assert tmux("display-message", "-p", "-t", f"{session}:term",
                "#{alternate_on}#{mouse_any_flag}").strip() == "00"
    deadline = time.monotonic() + 20
    while Path(f"/proc/{writer}").exists() or root.exists():
        assert time.monotonic() < deadline, "the demo writer or its folder outlived the app"
        time.sleep(0.1)


def test_a_kill_while_the_demo_starts_leaves_nothing_behind(tmux, session):
    marker = "--speed 4.25"
    tmux("new-window", "-t", session, "-n", "early",
         f"{sys.executable} -m stepflow_top --demo {marker}; sleep 30")
    deadline = time.monotonic() + 30
    while not (writers := [(p, a) for p, a in running(marker) if "demo.writer" in a]):
        assert time.monotonic() < deadline, "the demo never started its writer"
        time.sleep(0.01)
    writer, args = writers[0]
    root = Path(args.split("stepflow_top.demo.writer", 1)[1].split()[0])
    app = next(pid for pid, a in running(marker)
               if a.startswith(sys.executable) and "demo.writer" not in a)
    os.kill(app, 15)  # as soon as the writer exists: the app may not be mounted yet
    deadline = time.monotonic() + 20
    while Path(f"/proc/{writer}").exists() or Path(f"/proc/{app}").exists() or root.exists():
        assert time.monotonic() < deadline, "the demo left its writer or folder behind"
        time.sleep(0.1)
