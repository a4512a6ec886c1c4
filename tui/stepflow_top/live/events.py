"""The change feed as a stream of event dicts: what ``stepflow-top PATH --events`` prints.

Each hint (a file event, else the fallback timer) leads to one refresh of the change feed
alone (``Refresher`` with no executions window: no connection is held between looks, a
replaced database file is followed), then a probe sample for checkpoint events and newly
raised warnings (``HealthMonitor``). Events, each a JSON-ready dict with ``ts`` (Unix
seconds) and ``type``: the change feed's ``execution``, ``step``, ``execution_deleted``
and ``executions_deleted`` (``live.changes``); ``writer`` when the service attaches or
goes away; ``database_replaced``; the checkpoint-history events and WAL warnings; with
``integrity_every`` an ``integrity`` event; and ``unreadable`` (with ``error``, one line)
once when the store turns unreadable after the first look.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import AsyncIterator

from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from ..store.models import DEFAULT_STALL_AFTER
from ..wal.probe import WalSample
from .health import HealthMonitor
from .hints import FEED_STEP_MS, Hints
from .refresher import Refresher, StoreSnapshot, ViewRequest
from .schedule import ROLLBACK_INTERVAL
from .writer import WriterState

FEED_ONLY = ViewRequest(limit=0)
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class FeedOptions:
    """``seconds``: stop after this long (None: never); ``fallback``: seconds between
    looks when no file event comes; ``poll``: look every this many seconds instead of
    watching file events; ``stall_after`` (seconds) and ``writer_tz`` as for
    :class:`Refresher`; ``integrity_every``: seconds between quick_check runs (None:
    none)."""

    seconds: float | None = None
    fallback: float = 5.0
    poll: float | None = None
    stall_after: float = DEFAULT_STALL_AFTER
    integrity_every: float | None = None
    writer_tz: tzinfo | None | str = "infer"


async def change_feed(paths: StorePaths, options: FeedOptions = FeedOptions()
                      ) -> AsyncIterator[dict]:
    """Yield event dicts until ``options.seconds`` pass (or forever). Raises
    :class:`StoreUnavailable` (one line for people) before the first event when the
    store cannot be read at the start; a store that turns unreadable later yields one
    ``unreadable`` event and is followed until it is back. Close it (``aclose``) to stop
    its file watcher, probe and checks."""
    deadline = None if options.seconds is None else time.monotonic() + options.seconds
    refresher = Refresher(paths, stall_after=options.stall_after, writer_tz=options.writer_tz)
    first = refresher.refresh(FEED_ONLY, datetime.now(), force=True)
    if first.error:
        refresher.close()
        raise StoreUnavailable(first.error)
    health = HealthMonitor(paths.database, persist=False, probe=refresher.probe)
    hints = Hints([paths.database_dir], fallback=options.fallback, poll=options.poll,
                  step_ms=FEED_STEP_MS)
    hints.start()
    out: asyncio.Queue[dict | BaseException] = asyncio.Queue()
    tasks = [asyncio.create_task(_forward(_watch(paths, refresher, health, hints, first), out))]
    if options.integrity_every:
        tasks.append(asyncio.create_task(
            _forward(_integrity(paths, options.integrity_every, health), out)))
    try:
        for event in health_events(health, first.journal_mode):
            yield event
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                item = await asyncio.wait_for(out.get(), timeout=remaining)
            except asyncio.TimeoutError:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hints.stop()
        refresher.close()
        health.close()


async def _forward(source: AsyncIterator[dict], out: asyncio.Queue) -> None:
    """Put every event of ``source`` on ``out``, and its failure too: the consumer
    raises it instead of waiting for events that will not come."""
    try:
        async for event in source:
            out.put_nowait(event)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        out.put_nowait(exc)


async def _watch(paths: StorePaths, refresher: Refresher, health: HealthMonitor,
                 hints: Hints, first: StoreSnapshot) -> AsyncIterator[dict]:
    writer = first.writer
    journal, read_at = first.journal_mode, time.monotonic()
    error_said = False
    while True:
        await hints.wait()
        if journal != "wal":  # every read blocks a rollback writer's commits briefly
            await asyncio.sleep(max(0.0, ROLLBACK_INTERVAL - (time.monotonic() - read_at)))
        read_at = time.monotonic()
        snapshot = refresher.refresh(FEED_ONLY, datetime.now())
        if snapshot is None:
            for event in refresher.recheck(datetime.now(), writer):
                yield event
            continue
        if snapshot.error:
            if not error_said:
                yield {"ts": time.time(), "type": UNREADABLE, "error": snapshot.error}
                error_said = True
            continue
        error_said = False
        journal = snapshot.journal_mode
        if snapshot.replaced:
            yield {"ts": time.time(), "type": "database_replaced",
                   "database": str(paths.database)}
        if snapshot.writer.attached != writer.attached or (
                snapshot.writer.attached and _pids(snapshot.writer) != _pids(writer)):
            yield {"ts": time.time(), "type": "writer", **snapshot.writer.to_json()}
        writer = snapshot.writer
        for event in snapshot.events:
            yield event
        for event in health_events(health, snapshot.journal_mode, snapshot.sample):
            yield event


def _pids(writer: WriterState) -> list[int]:
    return [h.pid for h in writer.holders]


def health_events(health: HealthMonitor, journal_mode: str,
                  taken: WalSample | None = None) -> list[dict]:
    """Event dicts for checkpoint events and newly raised warnings of one new sample
    (``taken``: the refresh's own, when it took one)."""
    state = health.sample(journal_mode, taken)
    events = []
    for event in state.new_events:
        line = event.to_dict()
        line["ts"] = line.pop("time")
        events.append(line)
    for warning in health.raised(state):
        events.append({"ts": time.time(), **warning.to_dict()})
    return events


async def _integrity(paths: StorePaths, every: float, health: HealthMonitor
                     ) -> AsyncIterator[dict]:
    """Every ``every`` seconds, quick_check and foreign_key_check on a private copy
    (``live.checks.run_checks``, in a thread): ``{"ts", "type": "integrity", "state",
    "exit_code", "ok", "checks", ...}``."""
    from .checks import run_checks

    while True:
        await asyncio.sleep(every)
        sample = health.history.last_sample
        report = await asyncio.to_thread(
            run_checks, paths, "quick", now=datetime.now(),
            writer_attached=sample.writer_attached if sample is not None else None,
            sample=sample)
        yield {"ts": time.time(), "type": "integrity", **report.to_dict()}
