"""Change hints from watchfiles, as the app and --events consume them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from stepflow_top.live.hints import Hints


async def next_event(hints: Hints, timeout: float = 10.0) -> bool:
    """Wait until the next "event" hint (timer hints are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await hints.wait() == "event":
            return True
    return False


def touch_from_another_process(path) -> None:
    subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('x')",
                    str(path)], check=True)


async def test_a_change_in_the_folder_is_a_hint(tmp_path):
    hints = Hints([tmp_path], fallback=0.5)
    hints.start()
    try:
        await asyncio.sleep(0.3)  # the watcher thread starts
        touch_from_another_process(tmp_path / "stepflow.db-wal")
        assert await next_event(hints)
    finally:
        hints.stop()


async def test_hints_resume_after_the_folder_is_deleted_and_made_again(tmp_path):
    folder = tmp_path / "database"
    folder.mkdir()
    hints = Hints([folder], fallback=0.3)
    hints.start()
    try:
        await asyncio.sleep(0.3)  # the watcher thread starts
        shutil.rmtree(folder)
        folder.mkdir()
        # Drain the hints the move caused, then keep writing (from another process)
        # until a write is reported: within the watcher's heartbeat, not never.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while await hints.wait() == "event":
            pass
        reported = False
        while not reported and loop.time() < deadline:
            touch_from_another_process(folder / "stepflow.db-wal")
            reported = await hints.wait() == "event"
        assert reported
    finally:
        hints.stop()


async def test_watching_one_more_folder_keeps_watching_the_first(tmp_path):
    """Opening a log adds its folder: the database folder's events must keep coming
    (watchfiles sets the stop event it was given when its task is cancelled)."""
    database, logs = tmp_path / "database", tmp_path / "logs"
    database.mkdir()
    logs.mkdir()
    hints = Hints([database], fallback=60)
    hints.start()
    try:
        await asyncio.sleep(0.3)  # the watcher thread starts
        hints.set_folders([database, logs])
        await asyncio.sleep(0.3)  # the new watcher starts
        touch_from_another_process(database / "stepflow.db-wal")
        assert await next_event(hints, timeout=10)
        touch_from_another_process(logs / "step_0_a.log")
        assert await next_event(hints, timeout=10)
    finally:
        hints.stop()


async def test_the_watch_steps_short_while_changes_come_and_reports_across_switches(
        tmp_path, monkeypatch):
    """Short steps while the store changes, long ones once it is quiet (HEARTBEAT_MS,
    made short here); a change is reported on both sides of each switch."""
    import stepflow_top.live.hints as hints_module

    monkeypatch.setattr(hints_module, "HEARTBEAT_MS", 400)
    hints = Hints([tmp_path], fallback=60)
    hints.start()
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(0.3)  # the watcher thread starts
        assert not hints.active
        touch_from_another_process(tmp_path / "stepflow.db-wal")
        assert await next_event(hints)
        assert hints.active
        deadline = loop.time() + 10
        while hints.active and loop.time() < deadline:  # quiet for HEARTBEAT_MS
            await asyncio.wait_for(hints.wait(), timeout=10)
        assert not hints.active
        touch_from_another_process(tmp_path / "stepflow.db-wal")
        assert await next_event(hints)
        assert hints.active
    finally:
        hints.stop()


async def test_nothing_is_watched_while_the_consumer_streams(tmp_path):
    """While the consumer reads again by itself at its frame rate (a stream), the watch
    stops: no thread of its own, no reports. When the stream ends, a hint comes at once
    (for what happened meanwhile) and changes are reported again."""
    wal = tmp_path / "s.db-wal"
    hints = Hints([tmp_path], fallback=60)
    hints.start()
    try:
        assert await a_change_is_reported(hints, wal)
        hints.streaming = True
        assert await a_change_is_reported(hints, wal)  # the report the watch stops at
        await until_true(lambda: watch_threads() == 0)
        touch_from_another_process(wal)
        try:
            reason = await asyncio.wait_for(hints.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            reason = None
        assert reason is None
        hints.streaming = False
        assert await asyncio.wait_for(hints.wait(), timeout=5) == "event"  # meanwhile
        assert await a_change_is_reported(hints, wal)
        assert watch_threads() == 1
    finally:
        hints.stop()


async def a_change_is_reported(hints: Hints, path, timeout: float = 10.0) -> bool:
    """Write to ``path`` from another process until the write is reported (the watch
    may still be starting), within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        touch_from_another_process(path)
        try:
            if await asyncio.wait_for(hints.wait(), timeout=0.5) == "event":
                return True
        except asyncio.TimeoutError:
            pass
    return False


def watch_threads() -> int:
    """Threads of this process that watchfiles' Rust side (notify) runs."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            count += (task / "comm").read_text().startswith("notify-rs")
        except OSError:
            pass
    return count


async def until_true(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"not reached within {timeout}s"
        await asyncio.sleep(0.02)


def test_the_timer_interval_steps_through_its_choices():
    """``+``/``-`` in the monitor: the next longer or shorter interval, none past the ends."""
    hints = Hints([], fallback=5.0)
    assert hints.step_interval(+1) == 10.0 and hints.interval == 10.0
    assert hints.step_interval(-1) == 5.0
    hints.set_interval(60.0)
    assert hints.step_interval(+1) is None and hints.interval == 60.0
    polling = Hints([], poll=0.7)
    assert polling.step_interval(-1) == 0.5 and polling.poll == 0.5
    assert polling.step_interval(-1) is None
