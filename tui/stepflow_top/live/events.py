"""The change feed as a stream of event dicts: what ``stepflow-top PATH --events`` prints.

Each hint (a file event, else the fallback timer) leads to one refresh of the change feed
alone (``Refresher`` with no executions window: no connection is held between looks, a
replaced database file is followed), then a probe sample for checkpoint events and newly
raised warnings (``HealthMonitor``). Events, each a JSON-ready dict with ``ts`` (Unix
seconds) and ``type``: the change feed's ``execution``, ``step``, ``execution_deleted``
and ``executions_deleted`` (``live.changes``); ``writer`` when the service attaches or
goes away; ``database_replaced``; the checkpoint-history events and WAL warnings; with
``integrity_every`` an ``integrity`` event; and ``unreadable`` (with ``error``, one line)
once when the store turns unreadable after the first look, or (``follow_missing``, with
``"at_start": true``) once when it cannot be read at the start.

:func:`watched_feed` is the same feed with a :class:`FeedState` kept up to date as it
goes, for a reader in another thread (the Prometheus collector, ``live.metrics``).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import AsyncIterator, Callable, Iterable

from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from ..store.models import DEFAULT_STALL_AFTER, Execution, Step
from ..wal.probe import WalSample
from ..wal.readonly import closed_wal_store
from .health import HealthMonitor, HealthState
from .hints import Hints
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
    none); ``follow_missing``: a store that cannot be read at the start is waited for
    (one ``unreadable`` event) instead of raising :class:`StoreUnavailable`."""

    seconds: float | None = None
    fallback: float = 5.0
    poll: float | None = None
    stall_after: float = DEFAULT_STALL_AFTER
    integrity_every: float | None = None
    writer_tz: tzinfo | None | str = "infer"
    follow_missing: bool = False


@dataclass
class FeedState:
    """What the feed's loop saw last, for a reader in another thread: each field is
    replaced whole, never changed in place, so a reader sees one look or the next.

    ``snapshot``: the latest readable snapshot (None before the first); ``health``: the
    latest health reading; ``integrity``: the latest ``integrity`` event (None until
    one ran); ``error``: one line while the store is unreadable, else None;
    ``looked_at``: when the loop last looked at the store (Unix seconds), readable or
    not; ``on_look``: called in the loop after every look (the textfile writer; what it
    raises ends the feed).
    """

    snapshot: StoreSnapshot | None = None
    health: HealthState | None = None
    integrity: dict | None = None
    error: str | None = None
    looked_at: float | None = None
    on_look: Callable[[], None] | None = None
    _refresher: Refresher | None = None

    def _looked(self) -> None:
        self.looked_at = time.time()
        if self.on_look is not None:
            self.on_look()

    def executions_with_steps(self, ids: Iterable[str]) -> list[tuple[Execution, list[Step]]]:
        """These executions (with step aggregates) and their step rows, read in one
        short session on the feed's own reader; [] when the store cannot be read now.
        Call it only from the feed's loop, between two events (the reader is not
        shared across threads)."""
        refresher, snapshot = self._refresher, self.snapshot
        ids = list(ids)
        if refresher is None or snapshot is None or not ids:
            return []
        sample = snapshot.sample
        immutable = closed_wal_store(refresher.paths.database,
                                     sample.wal_mode if sample else None)
        try:
            with refresher.reader.session(immutable=immutable) as reader:
                return reader.executions_with_steps(ids)
        except StoreUnavailable:
            return []


async def change_feed(paths: StorePaths, options: FeedOptions = FeedOptions(), *,
                      refresher: Refresher | None = None) -> AsyncIterator[dict]:
    """Yield event dicts until ``options.seconds`` pass (or forever). A store that cannot
    be read at the start raises :class:`StoreUnavailable` (one line for people) before
    the first event, or with ``options.follow_missing`` yields one ``unreadable`` event
    (with ``"at_start": True``) and is looked at again every ``options.poll`` (else
    ``options.fallback``) seconds until it can be read; a store that turns unreadable
    later yields one ``unreadable`` event and is followed until it is back. Close it
    (``aclose``) to stop its file watcher, probe and checks.

    ``refresher``: a Refresher of ``paths`` to read through (and whose probe to use)
    instead of one of the feed's own: one probe process for both. Its owner closes it,
    and the feed ignores ``options.stall_after`` and ``writer_tz`` (the refresher's own
    apply). A refresh the owner makes through it takes the change-feed events that
    came since the feed's last one (``ChangeTracker.poll``: each change is reported
    once), and the feed never yields them: share one only when what the owner reads
    then stands for those events (``cli.wait`` reads its run after each event)."""
    async for event in watched_feed(paths, options, FeedState(), refresher=refresher):
        yield event


async def watched_feed(paths: StorePaths, options: FeedOptions, state: FeedState, *,
                       refresher: Refresher | None = None) -> AsyncIterator[dict]:
    """:func:`change_feed`, keeping ``state`` up to date (also while the store cannot be
    read at the start: ``state.error`` then says why, before :class:`StoreUnavailable`
    is raised or the ``unreadable`` event is yielded)."""
    deadline = None if options.seconds is None else time.monotonic() + options.seconds
    own = refresher is None
    if refresher is None:
        refresher = Refresher(paths, stall_after=options.stall_after,
                              writer_tz=options.writer_tz)
    try:
        first = refresher.refresh(FEED_ONLY, datetime.now(), force=True)
        said = False
        while first.error:
            state.error = first.error
            state._looked()
            if not options.follow_missing:
                raise StoreUnavailable(first.error)
            if not said:
                yield {"ts": time.time(), "type": UNREADABLE, "error": first.error,
                       "at_start": True}
                said = True
            pause = options.poll or options.fallback
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause)
            if deadline is not None and time.monotonic() >= deadline:
                return
            first = refresher.refresh(FEED_ONLY, datetime.now(), force=True)
        state.snapshot, state.error, state._refresher = first, None, refresher
        async with aclosing(_readable(paths, options, state, refresher, first,
                                      deadline)) as events:
            async for event in events:
                yield event
    finally:
        state._refresher = None
        if own:
            refresher.close()


async def _readable(paths: StorePaths, options: FeedOptions, state: FeedState,
                    refresher: Refresher, first: StoreSnapshot, deadline: float | None
                    ) -> AsyncIterator[dict]:
    """The feed from its first readable snapshot ``first`` until ``deadline``
    (``time.monotonic()``; None: never)."""
    health = HealthMonitor(paths.database, persist=False, probe=refresher.probe)
    hints = Hints([paths.database_dir], fallback=options.fallback, poll=options.poll)
    hints.start()
    out: asyncio.Queue[dict | BaseException] = asyncio.Queue()
    tasks = [asyncio.create_task(
        _forward(_watch(paths, refresher, health, hints, first, state), out))]
    if options.integrity_every:
        tasks.append(asyncio.create_task(
            _forward(_integrity(paths, options.integrity_every, health, state), out)))
    try:
        for event in _health_events(health, first.journal_mode, None, state):
            yield event
        state._looked()
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
                 hints: Hints, first: StoreSnapshot, state: FeedState) -> AsyncIterator[dict]:
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
            state._looked()
            for event in refresher.recheck(datetime.now(), writer):
                yield event
            continue
        if snapshot.error:
            state.error = snapshot.error
            state._looked()
            if not error_said:
                yield {"ts": time.time(), "type": UNREADABLE, "error": snapshot.error}
                error_said = True
            continue
        error_said = False
        # The health reading first: a reader of the state never sees a new snapshot
        # beside the previous sample's WAL figures for long.
        health_lines = _health_events(health, snapshot.journal_mode, snapshot.sample, state)
        state.snapshot, state.error = snapshot, None
        state._looked()
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
        for event in health_lines:
            yield event


def _pids(writer: WriterState) -> list[int]:
    return [h.pid for h in writer.holders]


def health_events(health: HealthMonitor, journal_mode: str,
                  taken: WalSample | None = None) -> list[dict]:
    """Event dicts for checkpoint events and newly raised warnings of one new sample
    (``taken``: the refresh's own, when it took one)."""
    return _health_events(health, journal_mode, taken, None)


def _health_events(health: HealthMonitor, journal_mode: str, taken: WalSample | None,
                   feed: FeedState | None) -> list[dict]:
    state = health.sample(journal_mode, taken)
    if feed is not None and state.sample is not None:
        feed.health = state
    events = []
    for event in state.new_events:
        line = event.to_dict()
        line["ts"] = line.pop("time")
        events.append(line)
    for warning in health.raised(state):
        events.append({"ts": time.time(), **warning.to_dict()})
    return events


async def _integrity(paths: StorePaths, every: float, health: HealthMonitor,
                     state: FeedState) -> AsyncIterator[dict]:
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
        event = {"ts": time.time(), "type": "integrity", **report.to_dict()}
        state.integrity = event
        yield event
