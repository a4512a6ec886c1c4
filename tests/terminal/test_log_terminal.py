"""The pager key in a real terminal: tmux runs stepflow-top on a copy of the fixture,
``o`` suspends the app, the pager reads the log on its standard input, and the app
takes the terminal back. (The pilot's headless driver cannot suspend.)"""

from __future__ import annotations

import shlex
import sys
import time

SHELL_BUILD = "b98c3c75-fc75-42c2-8a8e-0ba7e891ab26"


def test_o_pages_the_log_and_the_app_comes_back(tmux, fixture_store, tmp_path):
    log = next((fixture_store / "executions" / SHELL_BUILD).glob("step_2_*.log"))
    paged = tmp_path / "paged"
    pager = (f"{shlex.quote(sys.executable)} -c 'import shutil, sys; "
             f"shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], \"wb\"))' {paged}")
    command = (f"PAGER={shlex.quote(pager)} {shlex.quote(sys.executable)} -m stepflow_top "
               f"{shlex.quote(str(fixture_store))}; sleep 30")
    tmux("new-session", "-d", "-s", "log", "-x", "100", "-y", "30", command)
    tmux.screen_until("log", lambda s: "3 executions" in s and "✓ completed" in s)
    tmux("send-keys", "-t", "log", "Down", "Enter")  # newest first: shell-build is second
    tmux.screen_until("log", lambda s: "Model Training" in s)
    tmux("send-keys", "-t", "log", "Down", "Down", "Enter")
    tmux.screen_until("log", lambda s: "Epoch 5/5" in s and "lines," in s)
    tmux("send-keys", "-t", "log", "o")
    deadline = time.monotonic() + 30
    while not (paged.exists() and paged.read_bytes() == log.read_bytes()):
        assert time.monotonic() < deadline, "the pager never got the log"
        time.sleep(0.1)
    tmux.screen_until("log", lambda s: "Epoch 5/5" in s and "lines," in s)  # the app is back
    tmux("send-keys", "-t", "log", "q")
    tmux.screen_until("log", lambda s: "Epoch" not in s)
