"""``stepflow-top PATH --events``: one JSON line per observed change.

Each hint (a file event, else the fallback timer) leads to one refresh of the change feed
alone (``Refresher`` with no executions window: no connection is held between looks, a
replaced database file is followed), then a probe sample for checkpoint events and newly
raised warnings (``HealthMonitor``). Lines: the change feed's ``execution``, ``step``,
``execution_deleted`` and ``executions_deleted`` events (``live.changes``); ``writer``
when the service attaches or goes away; ``database_replaced``; the checkpoint-history
events and warnings; and with ``--integrity-every`` an ``integrity`` event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, tzinfo

from .live.health import HealthMonitor
from .live.hints import Hints
from .live.refresher import Refresher, ViewRequest
from .live.schedule import ROLLBACK_INTERVAL
from .live.writer import WriterState
from .store.locate import StorePaths

FEED_ONLY = ViewRequest(limit=0)


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
    writer_tz: tzinfo | None | str = "infer",
) -> int:
    """Print events until interrupted or ``seconds`` pass. Returns the exit status: 0,
    or 2 (with one line on stderr) when the store cannot be read at the start; a store
    that turns unreadable later is said once on stderr and followed when it is back."""
    deadline = None if seconds is None else time.monotonic() + seconds
    refresher = Refresher(paths, stall_after=stall_after, writer_tz=writer_tz)
    first = refresher.refresh(FEED_ONLY, datetime.now(), force=True)
    if first.error:
        refresher.close()
        print(f"stepflow-top: {first.error}", file=sys.stderr, flush=True)
        return 2
    hints = Hints([paths.database_dir], fallback=fallback, poll=poll)
    hints.start()
    health = HealthMonitor(paths.database, persist=False, probe=refresher.probe)
    checks = (asyncio.create_task(integrity_events(paths, integrity_every, health))
              if integrity_every else None)
    writer = first.writer
    journal, read_at = first.journal_mode, time.monotonic()
    error_said = False
    try:
        for event in health_events(health, first.journal_mode):
            emit(event)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                await asyncio.wait_for(hints.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                break
            if journal != "wal":  # every read blocks a rollback writer's commits briefly
                await asyncio.sleep(max(0.0, ROLLBACK_INTERVAL - (time.monotonic() - read_at)))
            read_at = time.monotonic()
            snapshot = refresher.refresh(FEED_ONLY, datetime.now())
            if snapshot is None:
                for event in refresher.recheck(datetime.now(), writer):
                    emit(event)
                continue
            if snapshot.error:
                if not error_said:
                    print(f"stepflow-top: {snapshot.error}", file=sys.stderr, flush=True)
                    error_said = True
                continue
            error_said = False
            journal = snapshot.journal_mode
            if snapshot.replaced:
                emit({"ts": time.time(), "type": "database_replaced",
                      "database": str(paths.database)})
            if snapshot.writer.attached != writer.attached or (
                    snapshot.writer.attached and _pids(snapshot.writer) != _pids(writer)):
                emit({"ts": time.time(), "type": "writer", **snapshot.writer.to_json()})
            writer = snapshot.writer
            for event in snapshot.events:
                emit(event)
            for event in health_events(health, snapshot.journal_mode):
                emit(event)
    finally:
        if checks is not None:
            checks.cancel()
        hints.stop()
        refresher.close()
        health.close()
    return 0


def _pids(writer: WriterState) -> list[int]:
    return [h.pid for h in writer.holders]


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


async def integrity_events(paths: StorePaths, every: float, health: HealthMonitor) -> None:
    """Every ``every`` seconds, run quick_check and foreign_key_check on a private
    copy (``live.checks.run_checks``, in a thread) and print ``{"ts", "type":
    "integrity", "state", "exit_code", "ok", "checks", ...}``."""
    from .live.checks import run_checks

    while True:
        await asyncio.sleep(every)
        sample = health.history.last_sample
        report = await asyncio.to_thread(
            run_checks, paths, "quick", now=datetime.now(),
            writer_attached=sample.writer_attached if sample is not None else None,
            sample=sample)
        emit({"ts": time.time(), "type": "integrity", **report.to_dict()})
