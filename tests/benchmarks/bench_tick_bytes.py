#!/usr/bin/env python3
"""What an idle stepflow-top sends to its terminal while one step runs.

Run it with the project's interpreter::

    python tests/benchmarks/bench_tick_bytes.py                 # this tree, 20 s
    python tests/benchmarks/bench_tick_bytes.py --tree old=/tmp/old/tui --tree new=tui

It builds a 1k-execution store with one step in flight (``demo.bulk.populate``) in a
temporary folder (removed at the end), starts a holder process that keeps the database
open the way an attached service does and restarts the in-flight step now (so it counts
as running and its elapsed time ticks each second), then runs each ``stepflow-top``
(one per ``--tree``: a folder holding the ``stepflow_top`` package, put first on
``PYTHONPATH``) side by side in 80x24 pseudo-terminals and prints, per tree, the bytes
per second written to the terminal and the CPU of its process tree over the window
(seconds), after the first rows are drawn and 3 s to settle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import bench_live as bench


def holder_main(db: Path) -> int:
    """Keep ``db`` open like the service and restart its running step now."""
    conn = sqlite3.connect(db)
    now = datetime.now().isoformat()  # the service's naive local timestamps
    conn.execute("UPDATE steps SET started_at=? WHERE status='running'", [now])
    conn.execute("UPDATE executions SET started_at=?, created_at=? WHERE id IN "
                 "(SELECT execution_id FROM steps WHERE status='running')", [now, now])
    conn.commit()
    time.sleep(3600)
    return 0


def running_step_start(db: Path) -> str | None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT started_at FROM steps WHERE status='running'").fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def measure(trees: dict[str, str | None], window: float) -> None:
    from stepflow_top.demo.bulk import populate

    tmp = Path(tempfile.mkdtemp(prefix="stepflow-tick-"))
    apps: dict[str, bench.PtyApp] = {}
    try:
        store = tmp / "s1k"
        populate(store, executions=1000, steps_per_execution=4)
        db = store / "database" / "stepflow.db"
        before = running_step_start(db)
        holder = bench.spawn([sys.executable, __file__, "--holder", str(db)])
        deadline = time.monotonic() + 10
        while running_step_start(db) == before:  # the holder's commit is not in yet
            if time.monotonic() > deadline:
                raise RuntimeError("the holder did not restart the running step within 10 s")
            time.sleep(0.1)
        for label, tree in trees.items():
            if tree:
                os.environ["PYTHONPATH"] = tree
            apps[label] = bench.PtyApp([sys.executable, "-m", "stepflow_top", str(store)],
                                       bench.first_rows_pattern(db))
        for label, app in apps.items():
            if not app.found.wait(30):
                raise RuntimeError(f"{label}: no execution row drawn within 30 s")
        time.sleep(3.0)
        start = {label: (app.bytes_out, bench.tree_cpu_seconds(app.pid))
                 for label, app in apps.items()}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        for label, app in apps.items():
            rate = (app.bytes_out - start[label][0]) / elapsed / 1000
            cpu = (bench.tree_cpu_seconds(app.pid) - start[label][1]) / elapsed * 100
            print(f"{label}: {rate:.2f} KB/s to the terminal, CPU {cpu:.2f} % of a core "
                  f"over {elapsed:.0f} s")
        bench.stop(holder)
    finally:
        for app in apps.values():
            app.close()
        bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                        help="a folder holding stepflow_top to run (repeatable)")
    parser.add_argument("--holder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.holder:
        return holder_main(args.holder)
    trees = dict(t.split("=", 1) for t in args.tree) or {"this tree": None}
    measure(trees, args.window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
