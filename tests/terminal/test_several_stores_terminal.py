"""Two stores in one real terminal (issue 10, "Done when": live at 80x24 and 120x40):
tmux runs ``stepflow-top A B`` and ``capture-pane`` reads the screen, as a user would."""

from __future__ import annotations

import sys

import pytest
from conftest import FIXTURE, copy_store


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_two_stores_share_one_screen(tmux, tmp_path, width, height):
    copy_store(FIXTURE, tmp_path / "day")
    copy_store(FIXTURE, tmp_path / "night")
    # COLUMNS and LINES (the test run may have them: 80 and 24) would override the
    # pane's size.
    command = (f"env -u COLUMNS -u LINES XDG_STATE_HOME={tmp_path / 'state'} "
               f"{sys.executable} -m stepflow_top {tmp_path / 'day'} {tmp_path / 'night'}; "
               "echo EXIT=$?; sleep 30")
    tmux("new-session", "-d", "-s", "two", "-x", str(width), "-y", str(height), command)

    roomy = height >= 30

    def both_stores_listed(screen: str) -> bool:
        """Each store's rows, under the bar of this size (the pane may get its size
        just after the program started)."""
        rows = [line.split()[0] for line in screen.splitlines()
                if "Nov 21" in line and line.split()[0] in ("day", "night")]
        bar = screen.splitlines()[0] if screen else ""
        return (sorted(rows) == ["day"] * 3 + ["night"] * 3
                and ("2 of 2 stores live" if roomy else "2/2 stores") in bar)

    screen = tmux.screen_until("two", both_stores_listed)
    lines = screen.splitlines()
    assert "Store" in screen and "Status" in screen
    if roomy:  # a line per store
        assert lines[1].split()[:3] == ["day", "●", "LIVE"]
        assert lines[2].split()[:3] == ["night", "●", "LIVE"]
    else:  # one compact line for both
        assert lines[1].startswith(" day ") and " · night " in lines[1]
    assert not any(line.rstrip().endswith("…") for line in lines[:2]), lines[:2]
    tmux("send-keys", "-t", "two", "q")
    tmux.screen_until("two", lambda s: "EXIT=0" in s)
