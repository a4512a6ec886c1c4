"""The live monitor (no mode option): the Textual app over one store."""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Callable

from ..live.refresher import Refresher
from ..live.settings import Settings
from ..store.locate import StorePaths


def run_app(paths: StorePaths, args: argparse.Namespace,
            on_hang_up: Callable[[], None] | None = None) -> int:
    """Run the monitor until the user quits; returns its exit status. ``on_hang_up`` is
    called if the terminal goes away."""
    # The first refresh runs while Textual is imported and starts (~0.4 s): the
    # rows are ready when the screen is.
    refresher = Refresher(paths, stall_after=args.stall_after, writer_tz=args.writer_tz)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The saved view, so the App can show this first snapshot as it is.
        first = pool.submit(refresher.refresh, Settings.load().view_request(), datetime.now(),
                            force=True)
        from ..ui.app import StepflowTop

    app = StepflowTop(
        paths,
        refresher=refresher,
        first_snapshot=first.result(),
        poll=args.poll,
        fallback=args.refresh or 5.0,
        interval_from_settings=args.refresh is None and args.poll is None,
        stall_after=args.stall_after,
        writer_tz=args.writer_tz,
        bell=args.bell,
        integrity_every=args.integrity_every,
        on_hang_up=on_hang_up,
    )
    app.run()
    return app.return_code or 0
