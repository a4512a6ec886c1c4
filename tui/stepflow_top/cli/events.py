"""``stepflow-top PATH… --events``: the change feed (:mod:`stepflow_top.live.events`)
printed as one JSON line per event, flushed at once.

Every line carries ``"v": 1`` (the version of the line format: ``schemas/
events.schema.json``, shipped in the package, describes every type) and ``"store"``
(the store's short name, ``StorePaths.label``). With several stores their feeds are
merged into one stream as events come. A store that turns unreadable is said once on
stderr instead of a line; with several stores, one that cannot be read at the start
is said once and tried again every ``--refresh`` (or ``--poll``) seconds while the
others go on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import aclosing
from dataclasses import replace

from ..live.events import UNREADABLE, FeedOptions, change_feed
from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from . import fail

VERSION = 1  # of the line format; a change that breaks a consumer raises it


def run_events(stores: list[StorePaths], args: argparse.Namespace) -> int:
    """Print events until interrupted or ``--seconds`` pass. Returns 0, or 2 (with one
    line on stderr) when no store can be read at the start (with one store: when it
    cannot)."""
    options = FeedOptions(seconds=args.seconds, fallback=args.refresh or 5.0, poll=args.poll,
                          stall_after=args.stall_after, integrity_every=args.integrity_every,
                          writer_tz=args.writer_tz)
    try:
        if len(stores) == 1:
            asyncio.run(_print_one(stores[0], options))
        else:
            asyncio.run(_print_merged(stores, options))
    except StoreUnavailable as exc:
        return fail(str(exc))
    return 0


def line(paths: StorePaths, event: dict) -> str:
    """The printed form of one feed event: ``v`` and ``store`` first, then the event."""
    return json.dumps({"v": VERSION, "store": paths.label, **event})


def _say(paths: StorePaths, error: str, several: bool) -> None:
    where = f"{paths.label}: " if several else ""
    print(f"stepflow-top: {where}{error}", file=sys.stderr, flush=True)


async def _print_one(paths: StorePaths, options: FeedOptions) -> None:
    async with aclosing(change_feed(paths, options)) as feed:
        async for event in feed:
            if event["type"] == UNREADABLE:
                _say(paths, event["error"], several=False)
            else:
                print(line(paths, event), flush=True)


async def _print_merged(stores: list[StorePaths], options: FeedOptions) -> None:
    """One stream from every store's feed; raises StoreUnavailable when none of them
    could be read at the start."""
    out: asyncio.Queue[tuple[StorePaths, dict]] = asyncio.Queue()
    # The deadline is the stream's, not a feed's; a store missing at the start is
    # waited for while the others go on.
    forever = replace(options, seconds=None, follow_missing=True)
    tasks = [asyncio.create_task(_pump(paths, forever, out)) for paths in stores]
    deadline = None if options.seconds is None else time.monotonic() + options.seconds
    failed_at_start: dict[str, str] = {}
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                paths, event = await asyncio.wait_for(out.get(), timeout=remaining)
            except asyncio.TimeoutError:
                return
            if event["type"] != UNREADABLE:
                print(line(paths, event), flush=True)
                continue
            if event.get("at_start"):
                failed_at_start[paths.label] = event["error"]
                if len(failed_at_start) == len(stores):
                    raise StoreUnavailable("; ".join(
                        f"{label}: {error}" for label, error in failed_at_start.items()))
            _say(paths, event["error"], several=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pump(paths: StorePaths, options: FeedOptions,
                out: asyncio.Queue[tuple[StorePaths, dict]]) -> None:
    """Put the events of one store's feed on ``out``."""
    async with aclosing(change_feed(paths, options)) as feed:
        async for event in feed:
            out.put_nowait((paths, event))
