"""A simulated StepFlow Monitor service that writes a storage root the way the real one does.

Used by ``stepflow-top --demo``, by tests (as a *separate process*, so the monitor never
shares a connection with the writer) and by benchmarks (:func:`populate`). Standard
library only.

This module is the public face of the demo writer and its command line; the work is done
in:

* :mod:`.store`: the layout of a storage root, the schema (:data:`SCHEMA`), the
  connection and its pragmas (:func:`open_store`, :data:`STARTUP_PRAGMAS`), the saves
  (``INSERT OR REPLACE`` or ``UPDATE``), timestamps, ids and log files;
* :mod:`.engine`: what the service holds in memory for each run and the saves it makes
  on each marker, exit, cancel, timeout, shutdown and in housekeeping;
* :mod:`.scripts`: the scripts that run; :mod:`.catalogue`: how one run is planned;
* :mod:`.service`: the live writer, playing planned runs through the engine (:func:`run`);
* :mod:`.bulk`: a bulk-built store for benchmarks (:func:`populate`);
* :mod:`.marker`: the demo only writes to storage roots it created (it marks them).

Each of them says what it reproduces of the real service (see ``STEPFLOW_STORE.md`` and
the ``stepflow-midrun`` fixture).

Run it with ``python -m stepflow_top.demo.writer DIR [--seconds S] [--speed X] [--seed N]
[--save-style replace|update]``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable

from .bulk import populate
from .marker import ForeignStoreError, claim_root
from .service import run
from .store import DB_RELPATH, SAVE_STYLES, SCHEMA, STARTUP_PRAGMAS, open_store

__all__ = [
    "DB_RELPATH",
    "SCHEMA",
    "STARTUP_PRAGMAS",
    "main",
    "open_store",
    "populate",
    "run",
]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stepflow_top.demo.writer",
        description="Simulate a StepFlow Monitor service writing to a storage root.",
    )
    parser.add_argument("root", metavar="DIR", help="storage root to create or append to")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="time factor: 2 runs scripts twice as fast (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible content")
    parser.add_argument("--save-style", choices=SAVE_STYLES, default="replace",
                        help="replace: INSERT OR REPLACE, a new rowid per save, as the real "
                        "service; update: plain UPDATEs that keep rowids (default replace)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status.

    ``argv`` defaults to ``sys.argv[1:]``. SIGINT and SIGTERM (when called from the main
    thread) stop the writer as the real service stops: the runs in flight are saved
    ``running``, the connection is closed and the process exits 0 without a traceback.
    SIGHUP stops it too, leaving the runs in flight ``pending`` as a service killed by a
    hang-up does, and still closing the connection. The writer runs in a worker thread so
    that the signal handler never runs inside ``Event.wait``.

    Returns 0 on a normal or signalled end; 1 when the writer failed (one line on stderr);
    2 for bad arguments (argparse exits) and when DIR holds a store the demo did not
    create (one line on stderr: the demo never writes to a real store).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be positive")
    if args.seconds is not None and args.seconds < 0:
        parser.error("--seconds must not be negative")
    try:
        claim_root(args.root)
    except ForeignStoreError as exc:
        print(f"stepflow demo writer: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"stepflow demo writer: cannot create {args.root}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1

    stop = threading.Event()
    hang_up = threading.Event()
    outcome: dict[str, object] = {}

    def handle_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            hang_up.set()
        stop.set()

    previous: dict[int, Callable[..., object] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGHUP too: a dropped SSH session must not leave the work folder behind.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, handle_signal)

    def work() -> None:
        try:
            outcome["finished"] = run(args.root, seconds=args.seconds, speed=args.speed,
                                      seed=args.seed, stop=stop, save_style=args.save_style,
                                      hang_up=hang_up)
        except Exception as exc:  # reported by the main thread
            outcome["error"] = exc

    if not args.quiet:
        print(f"stepflow demo writer: writing to {args.root} (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
    worker = threading.Thread(target=work, name="stepflow-demo-writer", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        stop.set()
        worker.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
    if "error" in outcome:
        print(f"stepflow demo writer: error: {outcome['error']}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"stepflow demo writer: {outcome.get('finished', 0)} executions finished",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
