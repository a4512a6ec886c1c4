"""``stepflow-top PATH --events``: one JSON line per observed change.

Each hint (a file event, else the fallback timer) leads to one look: executions and
steps saved since the previous look (``ChangeTracker``), then a probe sample for
checkpoint events and newly raised warnings (``HealthMonitor``). With
``--integrity-every`` a quick_check runs on that schedule, off the event loop, and
its result is printed as an ``integrity`` event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from .live.changes import ChangeTracker
from .live.health import HealthMonitor
from .live.hints import Hints
from .store.connection import StoreUnavailable
from .store.locate import StorePaths
from .store.queries import StoreReader


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


async def run_events(
    paths: StorePaths,
    *,
    seconds: float | None = None,
    fallback: float = 5.0,
    poll: float | None = None,
    stall_after: float = 60.0,
    integrity_every: float | None = None,
) -> int:
    """Print events until interrupted or ``seconds`` pass; returns the exit status (0).
    A store that cannot be read yet is waited for (said once on stderr)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    reader = StoreReader(paths, stall_after=stall_after)
    hints = Hints([paths.database_dir], fallback=fallback, poll=poll)
    hints.start()
    tracker = ChangeTracker(reader)
    health = HealthMonitor(paths.database, persist=False)
    checks = (asyncio.create_task(integrity_events(paths.database, integrity_every))
              if integrity_every else None)
    started = False
    waiting_said = False
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                if not started:
                    reader.open()
                    tracker.start(datetime.now())
                    started = True
                else:
                    for event in tracker.poll(datetime.now()):
                        emit(event)
                for event in health_events(health, reader.journal_mode):
                    emit(event)
            except StoreUnavailable as exc:
                reader.close()
                started = False
                if not waiting_said:
                    print(f"stepflow-top: {exc}", file=sys.stderr, flush=True)
                    waiting_said = True
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(hints.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                break
    finally:
        if checks is not None:
            checks.cancel()
        hints.stop()
        reader.close()
        health.close()
    return 0


def health_events(health: HealthMonitor, journal_mode: str) -> list[dict]:
    """Event lines for checkpoint events and newly raised warnings."""
    state = health.sample(journal_mode)
    events = []
    for event in state.new_events:
        line = event.to_dict()
        line["ts"] = line.pop("time")
        events.append(line)
    for warning in health.raised(state):
        events.append({"ts": time.time(), **warning.to_dict()})
    return events


async def integrity_events(database: Path, every: float) -> None:
    """Every ``every`` seconds, run quick_check and foreign_key_check on a private
    copy (in a thread) and print ``{"ts", "type": "integrity", "ok", "checks", ...}``."""
    from .wal.integrity import run_integrity

    while True:
        await asyncio.sleep(every)
        report = await asyncio.to_thread(
            run_integrity, database, ("quick_check", "foreign_key_check"))
        emit({"ts": time.time(), "type": "integrity", **report.to_dict()})
