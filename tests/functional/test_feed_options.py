"""The change feed's start: a store missing at the start followed until a service (in its
own process) creates it (``FeedOptions.follow_missing``), and a feed reading through a
Refresher its caller shares and keeps (``--wait``: one probe process)."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from datetime import datetime
from typing import Callable

import pytest
from service_writer import ServiceWriter
from stepflow_top.live.events import UNREADABLE, FeedOptions, FeedState, change_feed, watched_feed
from stepflow_top.live.refresher import Refresher, ViewRequest
from stepflow_top.store.locate import locate_store


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll ``predicate`` while the feed runs in the same loop; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(0.05)


def test_a_store_missing_at_the_start_is_said_once_then_followed(tmp_path):
    root = tmp_path / "late"
    paths = locate_store(root)
    state = FeedState()
    events: list[dict] = []
    services: list[ServiceWriter] = []

    async def scenario() -> None:
        options = FeedOptions(fallback=0.2, follow_missing=True)
        async with aclosing(watched_feed(paths, options, state)) as feed:
            async def consume() -> None:
                async for event in feed:
                    events.append(event)

            task = asyncio.create_task(consume())
            try:
                await until(lambda: events)
                services.append(await asyncio.to_thread(ServiceWriter, root))
                await until(lambda: state.snapshot is not None)
                await asyncio.to_thread(services[0].start, "late-run")
                await until(lambda: any(e["type"] == "execution" for e in events))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(scenario())
    finally:
        for service in services:
            service.close()
    first = events[0]
    assert first["type"] == UNREADABLE and first["at_start"] is True
    assert first["error"].startswith("no database at ")
    assert [e["type"] for e in events].count(UNREADABLE) == 1
    assert state.error is None


def test_a_missing_store_followed_ends_when_its_seconds_pass(tmp_path):
    async def collect() -> list[dict]:
        options = FeedOptions(seconds=0.5, fallback=0.1, follow_missing=True)
        return [e async for e in change_feed(locate_store(tmp_path / "none"), options)]

    events = asyncio.run(collect())
    assert [(e["type"], e["at_start"]) for e in events] == [(UNREADABLE, True)]


def test_a_shared_refresher_is_read_through_and_left_open(fixture_store):
    paths = locate_store(fixture_store)
    refresher = Refresher(paths)

    async def collect() -> list[dict]:
        feed = change_feed(paths, FeedOptions(seconds=0.5), refresher=refresher)
        return [e async for e in feed]

    try:
        asyncio.run(collect())
        assert refresher.probe.pid is not None  # the feed's health samples used it
        after = refresher.refresh(ViewRequest(limit=1), datetime.now(), force=True)
        assert after is not None and after.error is None  # not closed by the feed
    finally:
        refresher.close()
