#!/usr/bin/env python3
"""The TUI under a busy writer and a quiet one, drawn in a real pseudo-terminal, side by
side with a plain reader that polls every second and prints the newest names.

Run it with the project's interpreter: ``python tests/benchmarks/bench_stream.py``
(about two minutes a repeat; needs ``pip install pyte``, a terminal emulator that keeps the screen
each monitor draws). Two phases, each with a writer in its own process:

1. **stream**: the writer saves about 200 rows a second for 15 s (step rows, one save
   per transaction as the service does, with a new execution every 50 ms). Reported: the
   CPU of each monitor's process tree (% of one core), the bytes it sent to its terminal
   per second, and how stale the screen was: for each new execution, the time from its
   commit until its name was drawn (p50 / p95 / max; a name never drawn counts).
2. **quiet**: one new execution every 0.6 s, 20 times: commit → drawn p50 / p95.

3. **idle**: no commits, one running step whose elapsed time ticks (1k executions):
   CPU of each TUI's process tree over 20 s and bytes to its terminal.
4. **first rows** on 100k executions: spawn → a status word and a name drawn (both
   monitors compiled to bytecode first, as ``pip install`` leaves them).

With ``--peer-tree PATH`` the peer is another checkout's ``tui/`` (e.g. the previous
release, or the tree before a change) instead of the 1 s poller, so before and after run
side by side and noise hits both. ``--repeats N`` runs every phase N times (interleaved)
and reports medians; ``--only stream,quiet`` runs just those phases (of stream, quiet,
idle, first).

Issue 8's targets: stream ≤ 15 % of a core, ≤ 30 KB/s, newest state within 250 ms;
quiet p50 ≤ 40 ms, p95 ≤ 100 ms; idle < 1 % of a core; first rows on 100k ≤ 0.8 s.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_live as live  # noqa: E402  (its pty, process-tree and clean-up helpers)
import pyte  # noqa: E402  (a VT100 emulator: pip install pyte)
import stepflow_top  # noqa: E402
from stepflow_top.demo.bulk import populate  # noqa: E402

WRITER = textwrap.dedent("""
    import json, sys, time, uuid
    from datetime import datetime
    from stepflow_top.demo.writer import open_store
    root, mode = sys.argv[1], sys.argv[2]
    conn = open_store(root)
    def now(): return datetime.now().isoformat(timespec="microseconds")
    def execution(eid, name):
        conn.execute("INSERT OR REPLACE INTO executions (id, name, command, status, "
                     "created_at, user_name, total_steps, completed_steps) "
                     "VALUES (?, ?, 'bench', 'pending', ?, 'bench', 0, 0)", (eid, name, now()))
        conn.commit()
    def step(eid, index, status):
        conn.execute("INSERT OR REPLACE INTO steps (id, execution_id, name, step_index, status, "
                     "created_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (f"{eid}-{index}", eid, f"step {index}", index, status, now(), now()))
        conn.commit()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    n, end = 0, time.monotonic() + (15 if mode == "stream" else 1e9)
    live = []
    while time.monotonic() < end and (mode == "stream" or n < 20):
        eid = str(uuid.uuid4())
        name = f"q{n:04d}"
        execution(eid, name)
        print(json.dumps({"name": name, "t": time.time()}), flush=True)
        live.append(eid)
        n += 1
        if mode == "stream":  # ~10 step saves per new execution, 5 ms apart
            for i in range(10):
                step(live[-1 - i % min(len(live), 5)], i, "running" if i % 2 else "completed")
                time.sleep(0.005)
        else:
            time.sleep(0.6)
    print(json.dumps({"done": True, "executions": n}), flush=True)
    conn.close()
""")

PEER = textwrap.dedent("""
    import sqlite3, sys, time
    db = sys.argv[1]
    while True:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = conn.execute("SELECT name, status FROM executions "
                                "ORDER BY created_at DESC LIMIT 20").fetchall()
            conn.close()
            print("\\x1b[H\\x1b[2J" + "\\n".join(f"{s:<10} {n}" for n, s in rows), flush=True)
        except sqlite3.Error:
            pass
        time.sleep(1.0)
""")


def tree_argv(tree: Path | None) -> list[str]:
    """How to start stepflow-top: this checkout's, or another checkout's ``tui/``."""
    if tree is None:
        return live.stepflow_top_argv()
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); "
            "from stepflow_top.cli import main; sys.exit(main())"]


def run_phase(root: Path, mode: str, peer_tree: Path | None = None) -> dict:
    db = root / "database" / "stepflow.db"
    writer = live.spawn([sys.executable, "-c", WRITER, str(root), mode],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lines = live.LineReader(writer)
    if lines.wait_for(lambda d: d.get("ready"), 30) is None:
        raise RuntimeError("writer did not start")
    monitors = {}
    peer = (("peer (1 s poll)", [sys.executable, "-c", PEER, str(db)], rb"pending|completed")
            if peer_tree is None else (PEER_NAME, tree_argv(peer_tree) + [str(root)], rb"LIVE"))
    for name, argv, ready in (("stepflow-top", tree_argv(None) + [str(root)], rb"LIVE"), peer):
        monitors[name] = live.PtyApp(argv, re.compile(ready))
        monitors[name].recording = bytearray()  # from the first byte: the emulator needs all
    drawn: dict[str, dict[str, float]] = {name: {} for name in monitors}
    for app in monitors.values():
        app.found.wait(20)
    time.sleep(2.0)  # settled
    start = {n: (live.tree_cpu_seconds(a.pid), a.bytes_out, time.monotonic())
             for n, a in monitors.items()}
    stop_scan = threading.Event()

    # A terminal emulator per monitor: Textual sends only the cells that changed, so
    # a name is "drawn" when the emulated screen shows it, not when its bytes pass by.
    screens = {n: pyte.Screen(80, 24) for n in monitors}
    streams = {n: pyte.ByteStream(screens[n]) for n in monitors}

    def scan() -> None:
        # When each name first appears on each screen: the time the bytes that drew it
        # came out of the pty, not the time this thread finished parsing them (pyte is
        # slow: ~4 ms a full frame, which is the emulator's cost, not the monitor's).
        seen = {n: (0, 0) for n in monitors}  # (bytes fed, reads fed)
        while not stop_scan.is_set():
            for name, app in monitors.items():
                fed, reads = seen[name]
                for end, at in app.arrivals[reads:]:
                    streams[name].feed(bytes(app.recording[fed:end]))
                    fed, reads = end, reads + 1
                    for found in re.findall(r"q\d{4}", "\n".join(screens[name].display)):
                        drawn[name].setdefault(found, at)
                seen[name] = (fed, reads)
            time.sleep(0.002)

    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    writer.stdin.write(b"go\n")
    writer.stdin.flush()
    if lines.wait_for(lambda d: d.get("done"), 120) is None:
        raise RuntimeError("writer did not finish")
    time.sleep(1.5)  # the poller's last look
    figures = {}
    for name, app in monitors.items():
        cpu0, bytes0, t0 = start[name]
        elapsed = time.monotonic() - t0
        figures[name] = {
            "cpu_pct": 100 * (live.tree_cpu_seconds(app.pid) - cpu0) / elapsed,
            "bytes_per_s": (app.bytes_out - bytes0) / elapsed,
        }
    stop_scan.set()
    scanner.join(2)
    if "--show" in sys.argv:
        for name in monitors:
            print(f"--- {name} ({mode})", *screens[name].display, sep="\n", file=sys.stderr)
    commits = {d["name"]: d["t"] for _a, d in lines.lines if "name" in d}
    for name in monitors:
        delays = [drawn[name].get(n, commits[n] + 5.0) - t for n, t in commits.items()]
        delays.sort()
        figures[name].update({
            "drawn_p50_ms": 1000 * statistics.median(delays),
            "drawn_p95_ms": 1000 * delays[int(0.95 * (len(delays) - 1))],
            "drawn_max_ms": 1000 * delays[-1],
            "never_drawn": sum(n not in drawn[name] for n in commits),
            "executions": len(commits),
        })
    for app in monitors.values():
        app.close()
    live.stop(writer)
    return figures


PEER_NAME = "peer (1 s poll)"
IDLE_WINDOW = 20.0  # seconds


def measure_idle(root: Path, peer_tree: Path | None) -> dict:
    """CPU (% of a core) and bytes/s of each TUI over IDLE_WINDOW with no commits."""
    pattern = live.first_rows_pattern(root / "database" / "stepflow.db")
    apps = {"stepflow-top": live.PtyApp(tree_argv(None) + [str(root)], pattern)}
    if peer_tree is not None:
        apps[PEER_NAME] = live.PtyApp(tree_argv(peer_tree) + [str(root)], pattern)
    try:
        for app in apps.values():
            app.found.wait(30)
        time.sleep(3.0)  # settled
        start = {n: (live.tree_cpu_seconds(a.pid), a.bytes_out) for n, a in apps.items()}
        t0 = time.monotonic()
        time.sleep(IDLE_WINDOW)
        elapsed = time.monotonic() - t0
        return {n: {"idle_cpu_pct": 100 * (live.tree_cpu_seconds(a.pid) - start[n][0]) / elapsed,
                    "idle_bytes_per_s": (a.bytes_out - start[n][1]) / elapsed}
                for n, a in apps.items()}
    finally:
        for app in apps.values():
            app.close()


def measure_first_rows(root: Path, peer_tree: Path | None, peer_first: bool = False) -> dict:
    """Milliseconds from spawn until the first execution row is drawn, one TUI at a
    time; ``peer_first`` starts with the peer (the first one may meet a colder cache, so
    repeats alternate)."""
    pattern = live.first_rows_pattern(root / "database" / "stepflow.db")
    trees = {"stepflow-top": None} | ({PEER_NAME: peer_tree} if peer_tree else {})
    if peer_first:
        trees = dict(reversed(trees.items()))
    figures = {}
    for name, tree in trees.items():
        app = live.PtyApp(tree_argv(tree) + [str(root)], pattern)
        try:
            if not app.found.wait(30):
                raise RuntimeError(f"{name} drew no execution row within 30 s")
            figures[name] = {"first_rows_ms": 1000 * (app.first_match or 0.0)}
        finally:
            app.close()
    return figures


def median_figures(runs: list[dict]) -> dict:
    """Per monitor, the median of each figure over ``runs`` (each {monitor: {key: v}})."""
    return {name: {key: statistics.median(run[name][key] for run in runs)
                   for key in runs[0][name]} for name in runs[0]}


def main() -> int:
    global PEER_NAME
    peer_tree = None
    if "--peer-tree" in sys.argv:  # another checkout's tui/ folder as the peer
        peer_tree = Path(sys.argv[sys.argv.index("--peer-tree") + 1])
        PEER_NAME = f"peer {peer_tree}"
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 1
    # --only stream,quiet: just those phases (of stream, quiet, idle, first)
    only = (set(sys.argv[sys.argv.index("--only") + 1].split(",")) if "--only" in sys.argv
            else {"stream", "quiet", "idle", "first"})
    tmp = Path(tempfile.mkdtemp(prefix="stepflow-stream-"))
    live.compile_bytecode(Path(stepflow_top.__file__).parent)  # both start as installed
    if peer_tree is not None:
        live.compile_bytecode(peer_tree / "stepflow_top")
    try:
        runs: dict[str, list[dict]] = {"stream": [], "quiet": [], "idle": [], "first": []}
        if "idle" in only:
            populate(tmp / "idle", executions=1000)  # one running step: its elapsed time ticks
        if "first" in only:
            populate(tmp / "100k", executions=100_000)
        for repeat in range(repeats):
            for mode in ("stream", "quiet"):
                if mode not in only:
                    continue
                root = tmp / f"{mode}{repeat}"
                populate(root, executions=1000)
                print(f"[{mode} {repeat + 1}/{repeats}] running …", file=sys.stderr, flush=True)
                runs[mode].append(run_phase(root, mode, peer_tree))
            if "idle" in only:
                print(f"[idle {repeat + 1}/{repeats}] running …", file=sys.stderr, flush=True)
                runs["idle"].append(measure_idle(tmp / "idle", peer_tree))
            if "first" in only:
                print(f"[first rows {repeat + 1}/{repeats}] running …", file=sys.stderr,
                      flush=True)
                runs["first"].append(measure_first_rows(tmp / "100k", peer_tree,
                                                        repeat % 2 == 1))
    finally:
        live.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    results = {phase: median_figures(found) for phase, found in runs.items() if found}
    print(json.dumps({"medians": results, "runs": runs}, indent=2))
    s, q, i, f = (results.get(p, {}) for p in ("stream", "quiet", "idle", "first"))
    ours, peer = "stepflow-top", PEER_NAME
    rows = [
        ("stream: CPU of the process tree", "cpu_pct", s, "{:.1f} %", "≤ 15 %"),
        ("stream: bytes to the terminal", "bytes_per_s", s, "{:.0f} B/s", "≤ 30 KB/s"),
        ("stream: commit → name drawn p50", "drawn_p50_ms", s, "{:.0f} ms", "—"),
        ("stream: commit → name drawn p95", "drawn_p95_ms", s, "{:.0f} ms", "≤ 250 ms"),
        ("stream: commit → name drawn max", "drawn_max_ms", s, "{:.0f} ms", "—"),
        ("stream: names never drawn", "never_drawn", s, "{:.0f}", "0"),
        ("quiet: commit → name drawn p50", "drawn_p50_ms", q, "{:.0f} ms", "≤ 40 ms"),
        ("quiet: commit → name drawn p95", "drawn_p95_ms", q, "{:.0f} ms", "≤ 100 ms"),
        ("idle, one step ticking: CPU", "idle_cpu_pct", i, "{:.2f} %", "< 1 %"),
        ("idle, one step ticking: bytes", "idle_bytes_per_s", i, "{:.0f} B/s", "—"),
        ("first rows, 100k executions", "first_rows_ms", f, "{:.0f} ms", "≤ 800 ms"),
    ]
    print(f"\nMedians of {repeats} run(s).\n\n| figure | {ours} | {peer} | target |\n"
          "|---|--:|--:|---|")
    for label, key, phase, fmt, target in rows:
        if not phase:  # not run (--only)
            continue
        theirs = phase.get(peer, {}).get(key)
        print(f"| {label} | {fmt.format(phase[ours][key])} | "
              f"{'—' if theirs is None else fmt.format(theirs)} | {target} |")
    for name, phase in (("stream", s), ("quiet", q)):
        if phase:
            print(f"\n{phase[ours]['executions']:.0f} executions in the {name} phase.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
