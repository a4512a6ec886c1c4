"""``--demo`` (the simulated service in a temporary storage root, watched by the
monitor) and ``--demo-writer DIR`` (the simulated service alone)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..store.locate import locate_store


def run_writer(args: argparse.Namespace) -> int:
    """Run the simulated service in ``--demo-writer DIR`` until interrupted or
    ``--seconds`` pass; returns its exit status."""
    from ..demo import writer

    return writer.main(_writer_argv(args.demo_writer, args))


def run_demo(args: argparse.Namespace) -> int:
    """Run the simulated writer in a child process in a temporary storage root,
    watch it, and remove the folder on exit."""
    from .tui import run_app

    root = Path(tempfile.mkdtemp(prefix="stepflow-demo-"))
    writer = subprocess.Popen(
        [sys.executable, "-m", "stepflow_top.demo.writer", *_writer_argv(root, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def clean_up() -> None:
        writer.terminate()
        try:
            writer.wait(timeout=5)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()
        shutil.rmtree(root, ignore_errors=True)

    def on_signal(signum: int, _frame) -> None:
        # A hang-up or kill before the app has installed its own handlers (it does so
        # once mounted) must not leave the writer's folder behind.
        clean_up()
        os._exit(128 + signum)

    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        return run_app(locate_store(root), args, on_hang_up=clean_up)
    finally:
        clean_up()


def _writer_argv(root: Path, args: argparse.Namespace) -> list[str]:
    argv = [str(root), "--speed", str(args.speed), "--save-style", args.save_style]
    if args.seconds is not None:
        argv += ["--seconds", str(args.seconds)]
    return argv
