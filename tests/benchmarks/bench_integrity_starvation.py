"""Benchmark (a script, not a test): do stepflow-top's checks starve the writer's
checkpoints?

Two scenarios, each with a busy writer in a separate process (wal_autocheckpoint=1000
like StepFlow Monitor) and the WAL sampled by the probe subprocess every 20 ms: peak
live WAL bytes (32 + mxFrame * (page_size + 24)) and peak ``-wal`` file size (the file
never shrinks after a reset, so each phase starts with a fresh writer connection).

``integrity`` (a plain ~155 MB database, 3 random updates per commit every 3 ms):

1. the writer alone;
2. stepflow-top's IntegrityRunner running ``integrity_check`` back to back (copy, then
   check the copy: one short snapshot per run);
3. a naive reader running ``PRAGMA integrity_check`` on the live database back to back.

``check`` (a StepFlow store of ~160 MB built with ``demo.bulk.populate``; the writer
saves one step per commit with ``INSERT OR REPLACE``, as the service does, every 3 ms):

1. the writer alone;
2. the whole ``stepflow-top --check --full`` (a new process each time) back to back;
3. the same with another source tree (``--compare-src DIR``: its ``tui/`` folder, e.g.
   an older version unpacked with ``git archive``), when given;
4. the naive reader as above.

    python tests/benchmarks/bench_integrity_starvation.py [--scenario both|integrity|check]
        [--rows 700000] [--executions 90000] [--seconds 15] [--compare-src DIR]

Runtime about 4 minutes on 2 cores with the defaults (both scenarios).
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

TUI = Path(__file__).resolve().parents[2] / "tui"
sys.path.insert(0, str(TUI))

from stepflow_top.demo.bulk import populate  # noqa: E402
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


STEPFLOW_WRITER = r"""
import json, random, select, sqlite3, sys, time
db, interval = sys.argv[1], float(sys.argv[2])
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=10000",
               "temp_store=memory", "mmap_size=268435456", "wal_autocheckpoint=1000"):
    conn.execute("PRAGMA " + pragma).fetchall()
ids = [r[0] for r in conn.execute("SELECT id FROM steps")]
cols = [r[1] for r in conn.execute("PRAGMA table_info(steps)")]
picked = ", ".join("?" if c == "metadata" else c for c in cols)
save = (f"INSERT OR REPLACE INTO steps ({', '.join(cols)}) "
        f"SELECT {picked} FROM steps WHERE id = ?")
lat = []
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    t = time.perf_counter()
    conn.execute(save, (json.dumps({"progress": f"{random.randint(0, 100)}%"}),
                        random.choice(ids)))
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


def cli_checks(src: Path):
    """A checker running ``stepflow-top ROOT --check --full --json`` from the source
    tree ``src`` back to back, each in a new process."""

    def checker(db: Path, stop: threading.Event, out: dict) -> None:
        root = db.parent.parent
        env = {**os.environ, "PYTHONPATH": str(src)}
        out["states"] = {}
        while not stop.is_set():
            t = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "stepflow_top", str(root), "--check", "--full",
                 "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            while proc.poll() is None and not stop.wait(0.05):
                pass
            if proc.poll() is None:  # the phase ended mid-run
                proc.terminate()
                proc.communicate()
                break
            document = json.loads(proc.communicate()[0] or "{}")
            state = document.get("state") or ("ok" if document.get("ok") else "problem")
            out["states"][state] = out["states"].get(state, 0) + 1
            out["runs"] += 1
            out["snapshots"].append(document.get("snapshot_s", 0.0))
            out["durations"].append(time.monotonic() - t)

    return checker


def phase(db: Path, seconds: float, checker, writer: list[str]) -> dict:
    w = subprocess.Popen([sys.executable, "-c", *writer],
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
            "mean_run": statistics.mean(out["durations"]) if out["durations"] else 0.0,
            "states": out.get("states")}


def report(title: str, size: int, seconds: float, results: dict) -> None:
    mb = 1e6
    print()
    print(f"{title}: database {size / mb:.0f} MB; {seconds:g} s per phase; "
          f"{os.cpu_count()} CPUs")
    head = (f"{'phase':38} {'peak live WAL':>14} {'peak -wal file':>15} {'peak pending':>13} "
            f"{'commits':>8} {'p99 commit':>11} {'max commit':>11} {'checks':>7} "
            f"{'longest snapshot':>17}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        snap = f"{r['longest_snapshot']:.2f} s" if r["runs"] and r["longest_snapshot"] else "-"
        print(f"{name:38} {r['peak_live'] / mb:>11.1f} MB {r['peak_file'] / mb:>12.1f} MB "
              f"{r['peak_pending']:>13} {r['commits']:>8} {r['p99_ms']:>8.1f} ms "
              f"{r['max_ms']:>8.1f} ms {r['runs']:>7} {snap:>17}")
    base = results["writer alone"]["peak_live"] or 1
    for name in list(results)[1:]:
        r = results[name]
        states = f", results {r['states']}" if r.get("states") else ""
        print(f"{name}: peak live WAL = {r['peak_live'] / base:.1f} x writer alone"
              f" (mean run {r['mean_run']:.1f} s{states})")


def integrity_scenario(args: argparse.Namespace, tmp: Path) -> None:
    db = args.db or tmp / "big.db"
    if not db.exists():
        build(db, args.rows)
    rows = sqlite3.connect(db).execute("SELECT max(id) FROM t").fetchone()[0]
    writer = [WRITER, str(db), str(rows), "0.003"]
    results = {}
    for name, checker in (("writer alone", None),
                          ("+ stepflow-top IntegrityRunner", ours),
                          ("+ naive PRAGMA integrity_check", naive)):
        print(f"phase: {name} ({args.seconds:g} s) ...", flush=True)
        results[name] = phase(db, args.seconds, checker, writer)
    report(f"integrity: {rows} rows, 3 updates per commit every 3 ms", db.stat().st_size,
           args.seconds, results)


def check_scenario(args: argparse.Namespace, tmp: Path) -> None:
    root = tmp / "stepflow"
    db = root / "database" / "stepflow.db"
    print(f"building a StepFlow store with {args.executions} executions ...", flush=True)
    t = time.monotonic()
    populate(root, executions=args.executions, steps_per_execution=4, seed=1)
    print(f"  {db.stat().st_size / 1e6:.0f} MB in {time.monotonic() - t:.1f} s", flush=True)
    writer = [STEPFLOW_WRITER, str(db), "0.003"]
    phases = [("writer alone", None), ("+ stepflow-top --check --full", cli_checks(TUI))]
    if args.compare_src:
        src = args.compare_src.resolve()
        phases.append((f"+ --check --full ({(src.parent if src.name == 'tui' else src).name})",
                       cli_checks(args.compare_src)))
    phases.append(("+ naive PRAGMA integrity_check", naive))
    results = {}
    for name, checker in phases:
        print(f"phase: {name} ({args.seconds:g} s) ...", flush=True)
        results[name] = phase(db, args.seconds, checker, writer)
    report("check: one INSERT OR REPLACE step save per commit every 3 ms",
           db.stat().st_size, args.seconds, results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=("both", "integrity", "check"), default="both")
    ap.add_argument("--rows", type=int, default=700_000)
    ap.add_argument("--executions", type=int, default=90_000)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--db", type=Path, help="the integrity scenario's database (kept)")
    ap.add_argument("--compare-src", type=Path, metavar="DIR",
                    help="another version's tui/ folder, for a side-by-side --check phase")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stepflow-top-bench-"))
    t0 = time.monotonic()
    try:
        if args.scenario in ("both", "integrity"):
            integrity_scenario(args, tmp)
        if args.scenario in ("both", "check"):
            check_scenario(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
