"""Benchmark (a script, not a test): does running integrity checks starve the writer's
checkpoints?

Builds a large WAL database (default ~155 MB), runs a busy writer in a separate
process (random single-row updates, wal_autocheckpoint=1000 like StepFlow Monitor), and
measures the WAL while:

1. the writer runs alone;
2. stepflow-top's IntegrityRunner runs full ``integrity_check`` back to back
   (copy-then-check: one short snapshot per run);
3. a naive reader runs ``PRAGMA integrity_check`` on the live database back to back
   (one snapshot for the whole check).

The WAL is sampled with the probe subprocess every 20 ms: peak live WAL bytes
(32 + mxFrame * (page_size + 24)) and peak ``-wal`` file size (the file never shrinks
after a reset, so each phase starts with a fresh writer connection and a fresh ``-wal``).

    python tests/benchmarks/bench_integrity_starvation.py [--rows 700000] [--seconds 15]
        [--db PATH --keep]

Runtime about 2 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tui"))

from stepflow_top.wal.integrity import IntegrityRunner, connect_readonly  # noqa: E402
from stepflow_top.wal.probe import Probe  # noqa: E402

WRITER = r"""
import json, random, sqlite3, sys, time
db, rows, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("PRAGMA wal_autocheckpoint=1000")
lat = []
print("ready", flush=True)
import select
while not select.select([sys.stdin], [], [], 0)[0]:
    t = time.perf_counter()
    conn.execute("BEGIN")
    for _ in range(3):
        conn.execute("UPDATE t SET a = hex(randomblob(8)) WHERE id = ?",
                     (random.randint(1, rows),))
    conn.execute("COMMIT")
    lat.append(time.perf_counter() - t)
    time.sleep(interval)
conn.close()
lat.sort()
print(json.dumps({"commits": len(lat), "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
                  "max_ms": 1000 * lat[-1]}), flush=True)
"""


def build(db: Path, rows: int) -> None:
    print(f"building {db} with {rows} rows ...", flush=True)
    t = time.monotonic()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT, c BLOB)")
    conn.execute("CREATE INDEX ta ON t(a)")
    conn.execute("CREATE INDEX tb ON t(b)")
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ?) "
        "INSERT INTO t(a, b, c) SELECT hex(randomblob(8)), hex(randomblob(12)), "
        "randomblob(100) FROM r", (rows,))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"  {db.stat().st_size / 1e6:.0f} MB in {time.monotonic() - t:.1f} s", flush=True)


class Sampler(threading.Thread):
    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db, self.stop = db, threading.Event()
        self.peak_live = self.peak_file = self.peak_pending = 0
        self.samples = 0

    def run(self) -> None:
        with Probe() as probe:
            while not self.stop.wait(0.02):
                s = probe.sample(self.db)
                self.samples += 1
                self.peak_live = max(self.peak_live, s.live_wal_bytes or 0)
                self.peak_file = max(self.peak_file, s.wal_size or 0)
                self.peak_pending = max(self.peak_pending, s.pending or 0)


def ours(db: Path, stop: threading.Event, out: dict) -> None:
    runner = IntegrityRunner(db)
    out["runner"] = runner
    while not stop.is_set():
        rep = runner.run(("integrity_check",), cancel=stop)
        if rep.results[0].status == "ok":
            out["runs"] += 1
            out["snapshots"].append(rep.snapshot_s)
            out["durations"].append(rep.duration_s)


def naive(db: Path, stop: threading.Event, out: dict) -> None:
    conn = connect_readonly(str(db), timeout=30)
    out["conn"] = conn
    try:
        while not stop.is_set():
            t = time.monotonic()
            try:
                conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.OperationalError:  # interrupted at the end of the phase
                break
            out["runs"] += 1
            out["snapshots"].append(time.monotonic() - t)
            out["durations"].append(time.monotonic() - t)
    finally:
        conn.close()


def phase(db: Path, rows: int, seconds: float, checker) -> dict:
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(rows), "0.003"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert w.stdout is not None and w.stdin is not None
    assert w.stdout.readline().strip() == "ready"
    warm = time.monotonic() + 2.0
    while time.monotonic() < warm:  # steady state before measuring
        time.sleep(0.1)
    sampler = Sampler(db)
    sampler.start()
    stop = threading.Event()
    out: dict = {"runs": 0, "snapshots": [], "durations": []}
    th = threading.Thread(target=checker, args=(db, stop, out), daemon=True) if checker else None
    if th:
        th.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.1)
    stop.set()
    if "runner" in out:
        out["runner"].cancel()
    if "conn" in out:
        out["conn"].interrupt()
    if th:
        th.join(timeout=60)
    sampler.stop.set()
    sampler.join()
    w.stdin.write("stop\n")
    w.stdin.flush()
    stats = json.loads(w.stdout.readline())
    w.wait(timeout=30)
    return {**stats, "peak_live": sampler.peak_live, "peak_file": sampler.peak_file,
            "peak_pending": sampler.peak_pending, "samples": sampler.samples,
            "runs": out["runs"], "longest_snapshot": max(out["snapshots"], default=0.0),
            "mean_run": statistics.mean(out["durations"]) if out["durations"] else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=700_000)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the built database")
    args = ap.parse_args()
    tmp = None
    if args.db is None:
        tmp = Path(tempfile.mkdtemp(prefix="stepflow-top-bench-"))
        args.db = tmp / "big.db"
    if not args.db.exists():
        build(args.db, args.rows)
    rows = sqlite3.connect(args.db).execute("SELECT max(id) FROM t").fetchone()[0]
    size = args.db.stat().st_size
    t0 = time.monotonic()
    results = {}
    for name, checker in (("writer alone", None),
                          ("+ stepflow-top IntegrityRunner", ours),
                          ("+ naive PRAGMA integrity_check", naive)):
        print(f"phase: {name} ({args.seconds:g} s) ...", flush=True)
        results[name] = phase(args.db, rows, args.seconds, checker)
    mb = 1e6
    print()
    print(f"database {size / mb:.0f} MB, {rows} rows; writer: 3 updates per commit every "
          f"3 ms, wal_autocheckpoint=1000; {args.seconds:g} s per phase; "
          f"{os.cpu_count()} CPUs")
    head = (f"{'phase':34} {'peak live WAL':>14} {'peak -wal file':>15} {'peak pending':>13} "
            f"{'commits':>8} {'p99 commit':>11} {'max commit':>11} {'checks':>7} "
            f"{'longest snapshot':>17}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        snap = f"{r['longest_snapshot']:.2f} s" if r["runs"] else "-"
        print(f"{name:34} {r['peak_live'] / mb:>11.1f} MB {r['peak_file'] / mb:>12.1f} MB "
              f"{r['peak_pending']:>13} {r['commits']:>8} {r['p99_ms']:>8.1f} ms "
              f"{r['max_ms']:>8.1f} ms {r['runs']:>7} {snap:>17}")
    base = results["writer alone"]["peak_live"] or 1
    for name in list(results)[1:]:
        print(f"{name}: peak live WAL = {results[name]['peak_live'] / base:.1f} x writer alone"
              f" (mean check {results[name]['mean_run']:.1f} s)")
    print(f"total {time.monotonic() - t0:.0f} s (+ build)")
    if tmp is not None and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
