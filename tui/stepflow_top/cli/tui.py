"""The live monitor (no mode option): the Textual app over one store, or over several
(``ui.several``: one Refresher each, merged)."""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Callable

from ..store.locate import StorePaths
from ..wal.probe import Probe, started_probes


def run_app(stores: StorePaths | list[StorePaths], args: argparse.Namespace,
            on_hang_up: Callable[[], None] | None = None) -> int:
    """Run the monitor over one store or a list of them until the user quits; returns
    its exit status. ``on_hang_up`` is called if the terminal goes away."""
    if isinstance(stores, StorePaths):
        stores = [stores]
    # The probe processes start first: their interpreters start while this one
    # imports the rest, and the first refresh need not wait for them.
    with started_probes(len(stores)) as probes:
        return _run(stores, probes, args, on_hang_up)


def _run(stores: list[StorePaths], probes: list[Probe], args: argparse.Namespace,
         on_hang_up: Callable[[], None] | None) -> int:
    from ..live.refresher import Refresher
    from ..live.settings import Settings
    from ..live.stores import StoreSet

    paths = stores[0]
    # The first refresh runs while Textual is imported and starts (~0.4 s): the
    # rows are ready when the screen is.
    refresher: Refresher | StoreSet
    if len(stores) > 1:
        refresher = StoreSet(stores, stall_after=args.stall_after, writer_tz=args.writer_tz,
                             probes=probes)
    else:
        refresher = Refresher(paths, stall_after=args.stall_after, writer_tz=args.writer_tz,
                              probe=probes[0])
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The saved view, so the App can show this first snapshot as it is.
        first = pool.submit(refresher.refresh, Settings.load().view_request(), datetime.now(),
                            force=True)
        from ..ui.app import StepflowTop

    options = dict(
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
    if isinstance(refresher, StoreSet):
        from ..ui.several import SeveralStoresTop

        del options["refresher"]
        app: StepflowTop = SeveralStoresTop(stores, store_set=refresher, **options)
    else:
        app = StepflowTop(paths, **options)
    app.run()
    return app.return_code or 0
