#!/usr/bin/env python3
"""Benchmark (a script, not a test): how long the log screen takes to answer a key
on logs that froze it before (issue 7 item 8), and what reading them costs.

Run it with the project's interpreter::

    python tests/benchmarks/bench_log_keys.py [--repeat 5]

It copies the fixture store to a temporary folder and gives one step a log of each
kind in turn:

- ``2MB-line``: 30 ordinary lines, one 2 MB line of "abc abc …", 30 more;
- ``5MB-line``: one 5 MB line of "abc abc …" (longer than the 2 MiB read window);
- ``coloured``: 2 MiB of CI output with SGR colours, carriage-return progress and
  error/warning lines.

For each it prints the time to read and shape the file (``read_log`` plus
``LogRead.shaped``, as the screen's worker does), then drives the app with Textual's
pilot at 100x30 and prints, per key, the process CPU time from the key press until
the screen has processed it and is idle again (dispatch, action, layout and drawing:
what a user waits for), median and worst, and the wall time, which adds the pilot's
own idle detection (about 80 ms here). A ``baseline`` run on the fixture's 2-line log
shows the cost of a key on a log that costs nothing.
Figures are from this machine; tests never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from conftest import FIXTURE, FROZEN_NOW, copy_store  # noqa: E402

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"
KEYS = ["slash", "n", "N", "down", "up", "pagedown", "w", "t", "e", "E", "g", "G", "n", "w"]


def logs() -> dict[str, bytes]:
    stamp = b"[2026-11-21T19:47:31.000351] "
    lines = [stamp + b"line %d" % i for i in range(30)]
    long_line = stamp + b"abc " * (2_000_000 // 4) + b"needle"
    coloured, size, i = [], 0, 0
    while size < 2 * 1024 * 1024:
        line = stamp + [b"\x1b[32mPASSED\x1b[0m tests/test_mod.py::test_%d \x1b[1m[ 42%%]\x1b[0m" % i,
                        b"Collecting package %d from the index (abc)" % i,
                        b"10%\r20%\r\x1b[33mWARNING\x1b[0m 100% done\x1b[K",
                        b"\x1b[38;5;196mERROR\x1b[39m something failed at %d" % i][i % 4]
        coloured.append(line)
        size += len(line) + 1
        i += 1
    return {
        "baseline": b"\n".join(lines[:2]) + b"\n",
        "2MB-line": b"\n".join(lines + [long_line] + lines) + b"\n",
        "5MB-line": stamp + b"abc " * 1_250_000 + b"needle\n",
        "coloured": b"\n".join(coloured) + b"\n",
    }


async def drive(root: Path, repeat: int) -> dict[str, list[tuple[float, float]]]:
    from stepflow_top.store.locate import locate_store
    from stepflow_top.ui.app import StepflowTop
    from stepflow_top.ui.screens.detail import DetailScreen
    from stepflow_top.ui.screens.log import LogScreen
    from stepflow_top.ui.widgets.log_view import LogView

    app = StepflowTop(locate_store(root), clock=lambda: FROZEN_NOW, watch=False)
    times: dict[str, list[tuple[float, float]]] = {}
    async with app.run_test(size=(100, 30)) as pilot:
        while app.snapshot is None or app.snapshot.error:
            await pilot.pause(0.05)
        app.push_screen(DetailScreen(NIGHTLY))
        while not isinstance(app.screen, DetailScreen) or app.screen.detail is None:
            await pilot.pause(0.05)
        await pilot.press("enter")
        while not (isinstance(app.screen, LogScreen) and app.screen.query_one(LogView).lines):
            await pilot.pause(0.05)
        for _ in range(repeat):
            for key in KEYS:
                presses = [key] if key != "slash" else ["slash", *"abc", "enter"]
                start, cpu = time.perf_counter(), time.process_time()
                await pilot.press(*presses)
                await pilot.pause()
                name = "/abc⏎" if key == "slash" else key
                times.setdefault(name, []).append(
                    (time.perf_counter() - start, time.process_time() - cpu))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from stepflow_top.store.logs import read_log

    with tempfile.TemporaryDirectory() as folder:
        for kind, data in logs().items():
            root = copy_store(FIXTURE, Path(folder) / kind)
            log = next((root / "executions" / NIGHTLY).glob("step_0_*.log"))
            log.write_bytes(data)
            start = time.perf_counter()
            read = read_log(log, executions_dir=root / "executions")
            shaped = read.shaped
            took = time.perf_counter() - start
            print(f"{kind}: {len(data) / 1e6:.1f} MB, {len(shaped)} lines shown; "
                  f"read + shape {took * 1000:.0f} ms")
            times = asyncio.run(drive(root, args.repeat))
            for key, values in times.items():
                wall = [w for w, _ in values]
                cpu = [c for _, c in values]
                print(f"  {key:<10} CPU median {statistics.median(cpu) * 1000:6.1f} ms, "
                      f"worst {max(cpu) * 1000:6.1f} ms   (wall incl. the pilot's idle wait: "
                      f"median {statistics.median(wall) * 1000:6.1f} ms)")
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
