"""``stepflow-top PATH --events``: the change feed (:mod:`stepflow_top.live.events`)
printed as one JSON line per event, flushed at once; a store that turns unreadable is
said once on stderr instead."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import aclosing

from ..live.events import UNREADABLE, FeedOptions, change_feed
from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from . import fail


def run_events(paths: StorePaths, args: argparse.Namespace) -> int:
    """Print events until interrupted or ``--seconds`` pass. Returns 0, or 2 (with one
    line on stderr) when the store cannot be read at the start."""
    options = FeedOptions(seconds=args.seconds, fallback=args.refresh or 5.0, poll=args.poll,
                          stall_after=args.stall_after, integrity_every=args.integrity_every,
                          writer_tz=args.writer_tz)
    try:
        asyncio.run(_print(paths, options))
    except StoreUnavailable as exc:
        return fail(str(exc))
    return 0


async def _print(paths: StorePaths, options: FeedOptions) -> None:
    async with aclosing(change_feed(paths, options)) as feed:
        async for event in feed:
            if event["type"] == UNREADABLE:
                print(f"stepflow-top: {event['error']}", file=sys.stderr, flush=True)
            else:
                print(json.dumps(event), flush=True)
