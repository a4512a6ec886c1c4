#!/usr/bin/env python3
"""``--metrics`` benchmark: scrape latency and idle CPU on a 100k-execution store.

Run it with the project's interpreter (the package must be importable)::

    python tests/benchmarks/bench_metrics.py             # 100k executions, 30 s idle
    python tests/benchmarks/bench_metrics.py --executions 1000 --idle 10

It builds a store with ``stepflow_top.demo.bulk.populate`` (4 steps each, one run in
flight) in a temporary folder (removed at the end), starts ``stepflow-top ROOT --metrics
127.0.0.1:0`` and waits for ``stepflow_up 1``, then:

1. **scrape latency**: ``GET /metrics`` ``--scrapes`` times in a row (wall time from
   request to the last byte; p50, p95, max), and the exposition's size in bytes;
2. **idle CPU**: utime+stime of the exporter and its children (the probe) from
   ``/proc/PID/stat`` and ``/proc/PID/task/*/children`` over ``--idle`` seconds with
   no commit and no scrape, as % of one core.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from stepflow_top.demo.bulk import populate

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live children (seconds)."""
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
        root = Path(folder) / "storage"
        started = time.perf_counter()
        populate(root, executions=args.executions)
        print(f"store: {args.executions} executions, built in "
              f"{time.perf_counter() - started:.1f} s")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stepflow_top", str(root), "--metrics", "127.0.0.1:0"],
            stderr=subprocess.PIPE, text=True)
        try:
            select.select([proc.stderr], [], [], 60)
            port = int(re.search(r":(\d+)/metrics", proc.stderr.readline()).group(1))
            url = f"http://127.0.0.1:{port}/metrics"
            deadline = time.monotonic() + 120
            while 'stepflow_up{store="storage"} 1.0' not in _get(url):
                if time.monotonic() > deadline:
                    raise SystemExit("the exporter never read the store")
                time.sleep(0.2)
            times, size = [], 0
            for _ in range(args.scrapes):
                t0 = time.perf_counter()
                size = len(_get(url))
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"scrape latency over {args.scrapes} scrapes: p50 "
                  f"{statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms; "
                  f"{size} bytes")
            time.sleep(3)  # the last scrape's work is done
            before, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.idle)
            used, spent = cpu_seconds(proc.pid) - before, time.monotonic() - t0
            print(f"idle CPU over {spent:.0f} s: {100 * used / spent:.2f} % of one core "
                  f"({used:.2f} s)")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return 0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


if __name__ == "__main__":
    sys.exit(main())
