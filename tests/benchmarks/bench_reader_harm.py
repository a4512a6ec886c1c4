"""What a monitoring reader costs the writer, side by side: this checkout's refresher
against a peer (another checkout of stepflow-top, e.g. the last release, given with
``--peer DIR``; without it, a plain reader that keeps one connection open and re-runs
the same query after every commit).

Three measurements, each with the writer in its own process:

1. ``checkpoint``: a store of N executions; the reader refreshes a filter that matches
   nothing, as fast as its scheduling lets it (the TUI under a stream of commits); the
   writer commits a row every 5 ms and runs ``wal_checkpoint(RESTART)`` every 0.5 s,
   timing each: p50 / max wait. (Issue 7 item 3: 2.3 s max, p50 107 ms, 8 ms alone.)
2. ``rollback``: the same store switched to ``journal_mode=DELETE``; the writer commits
   with ``busy_timeout=0`` for 10 s while the reader refreshes on every change it sees;
   the share of commits that failed "database is locked". (Item 4: 26 % before.)
3. ``shutdown``: the reader refreshes once and idles; the writer closes cleanly: are
   ``-wal``/``-shm`` deleted, and does ``PRAGMA journal_mode=DELETE`` work while the
   reader runs? (Item 1.)

Run: ``python tests/benchmarks/bench_reader_harm.py [--executions 1000000] [--peer DIR]``
(a 1M-execution store takes about two minutes to build; it is kept in --cache).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "tui"

READER = textwrap.dedent("""
    import os, sys, time
    from datetime import datetime
    sys.path.insert(0, sys.argv[1])
    from stepflow_top.store.locate import locate_store
    from stepflow_top.live.refresher import Refresher, ViewRequest
    mode, root, seconds = sys.argv[2], sys.argv[3], float(sys.argv[4])
    refresher = Refresher(locate_store(root))
    request = ViewRequest(text="no-such-run-anywhere") if mode == "checkpoint" else ViewRequest()
    try:
        from stepflow_top.live.schedule import ROLLBACK_INTERVAL, RefreshScheduler
    except ImportError:
        RefreshScheduler = None
    scheduler = RefreshScheduler() if RefreshScheduler else None
    database = locate_store(root).database
    def changed(last=[None]):
        keys = []
        for p in (database, str(database) + "-wal"):
            try:
                st = os.stat(p); keys.append((st.st_size, st.st_mtime_ns))
            except OSError:
                keys.append(None)
        moved = keys != last[0]; last[0] = keys
        return moved
    print("ready", flush=True)
    end = time.monotonic() + seconds
    refreshes = 0
    while time.monotonic() < end:
        if mode == "shutdown":
            if refreshes == 0:
                refresher.refresh(request, datetime.now(), force=True); refreshes += 1
            time.sleep(0.05); continue
        if mode == "rollback" and not changed():
            time.sleep(0.002); continue
        if scheduler is not None:  # the TUI's own pacing between refreshes
            delay = scheduler.request(force=True)
            if delay is None:
                continue
            time.sleep(delay); scheduler.start()
        snapshot = refresher.refresh(request, datetime.now(), force=True)
        refreshes += 1
        if scheduler is not None:
            scheduler.finish()
            if snapshot is not None and snapshot.journal_mode not in ("wal", "?"):
                scheduler.min_interval = ROLLBACK_INTERVAL  # as the TUI does
    print(refreshes, flush=True)
""")

PLAIN_PEER = textwrap.dedent("""
    import os, sys, time, sqlite3
    mode, root, seconds = sys.argv[2], sys.argv[3], float(sys.argv[4])
    db = os.path.join(root, "database", "stepflow.db")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    sql = ("SELECT * FROM executions WHERE name LIKE '%no-such-run-anywhere%' "
           "ORDER BY created_at DESC LIMIT 50") if mode == "checkpoint" else \
          "SELECT * FROM executions ORDER BY created_at DESC LIMIT 50"
    print("ready", flush=True)
    end = time.monotonic() + seconds; n = 0
    while time.monotonic() < end:
        if mode == "shutdown":
            if n == 0: conn.execute(sql).fetchall(); n += 1
            time.sleep(0.05); continue
        try:
            conn.execute(sql).fetchall(); n += 1
        except sqlite3.OperationalError:
            pass
    print(n, flush=True)
""")


def build(root: Path, executions: int) -> None:
    sys.path.insert(0, str(HERE))
    from stepflow_top.demo.bulk import populate

    populate(root, executions=executions, running=1)


def start_reader(source: Path | None, mode: str, root: Path, seconds: float):
    script = READER if source is not None else PLAIN_PEER
    proc = subprocess.Popen([sys.executable, "-c", script, str(source or ""), mode, str(root),
                             str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def writer_checkpoints(db: Path, seconds: float) -> list[float]:
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_ping (v BLOB)")
    waits, end, next_ckpt = [], time.monotonic() + seconds, time.monotonic() + 0.5
    while time.monotonic() < end:
        conn.execute("INSERT INTO bench_ping VALUES (randomblob(200))")
        if time.monotonic() >= next_ckpt:
            t0 = time.monotonic()
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            waits.append(time.monotonic() - t0)
            next_ckpt = time.monotonic() + 0.5
        time.sleep(0.005)
    conn.execute("DROP TABLE bench_ping")
    conn.close()
    return waits


def writer_rollback(db: Path, seconds: float) -> tuple[int, int]:
    conn = sqlite3.connect(db, isolation_level=None, timeout=0)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_ping (v BLOB)")
    ok = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn.execute("INSERT INTO bench_ping VALUES (randomblob(200))")
            ok += 1
        except sqlite3.OperationalError:
            failed += 1
        time.sleep(0.01)
    conn.close()
    return ok, failed


def measure(source: Path | None, store: Path, seconds: float) -> dict:
    result: dict = {}
    work = Path(tempfile.mkdtemp(prefix="bench-harm-"))
    try:
        root = work / "store"
        shutil.copytree(store, root)
        db = root / "database" / "stepflow.db"
        alone = writer_checkpoints(db, 3)
        reader = start_reader(source, "checkpoint", root, seconds + 2)
        waits = writer_checkpoints(db, seconds)
        refreshes = int(reader.stdout.readline() or 0)
        reader.wait()
        result["checkpoint"] = {
            "alone_p50_ms": 1000 * statistics.median(alone),
            "p50_ms": 1000 * statistics.median(waits), "max_ms": 1000 * max(waits),
            "refreshes": refreshes}

        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        reader = start_reader(source, "rollback", root, seconds + 2)
        ok, failed = writer_rollback(db, seconds)
        reader.terminate()
        reader.wait()
        result["rollback"] = {"commits": ok, "failed": failed,
                              "failed_pct": 100 * failed / max(1, ok + failed)}

        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("SELECT count(*) FROM executions").fetchall()
        reader = start_reader(source, "shutdown", root, 30)
        time.sleep(1.0)  # the reader has refreshed once and is idle
        try:
            conn.execute("PRAGMA journal_mode=DELETE").fetchall()
            switched = True
        except sqlite3.OperationalError:
            switched = False
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.close()
        wal_left = (db.parent / "stepflow.db-wal").exists()
        reader.terminate()
        reader.wait()
        result["shutdown"] = {"journal_mode_switch_ok": switched, "wal_left_behind": wal_left}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--peer", type=Path, help="another checkout's tui/ folder")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-harm")
    args = parser.parse_args()
    store = args.cache / f"store-{args.executions}"
    if not (store / "database" / "stepflow.db").exists():
        shutil.rmtree(store, ignore_errors=True)
        print(f"building {args.executions} executions in {store} …", flush=True)
        build(store, args.executions)
    ours = measure(HERE, store, args.seconds)
    peer = measure(args.peer, store, args.seconds)
    name = f"peer {args.peer}" if args.peer else "plain reader"
    print(json.dumps({"stepflow-top": ours, name: peer}, indent=2))
    rows = [
        ("RESTART wait, writer alone p50", "checkpoint", "alone_p50_ms", "{:.0f} ms"),
        ("RESTART wait p50", "checkpoint", "p50_ms", "{:.0f} ms"),
        ("RESTART wait max", "checkpoint", "max_ms", "{:.0f} ms"),
        ("refreshes in the run", "checkpoint", "refreshes", "{}"),
        ("rollback commits failed", "rollback", "failed_pct", "{:.1f} %"),
        ("journal_mode switch while open", "shutdown", "journal_mode_switch_ok", "{}"),
        ("-wal left after clean close", "shutdown", "wal_left_behind", "{}"),
    ]
    print(f"\n| figure | stepflow-top | {name} |\n|---|--:|--:|")
    for label, group, key, fmt in rows:
        print(f"| {label} | {fmt.format(ours[group][key])} | {fmt.format(peer[group][key])} |")


if __name__ == "__main__":
    main()
