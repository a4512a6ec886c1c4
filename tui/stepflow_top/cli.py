"""Command line: picks a mode (TUI, --once, --events, --demo, --demo-writer, --check)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, formatting
from .live.writer import format_offset
from .store.locate import StorePaths, locate_store
from .store.models import DEFAULT_STALL_AFTER, Status
from .store.text import literal

# Each mode imports what it needs when it runs: start-up time is time to first rows.
if TYPE_CHECKING:
    from .live.refresher import StoreSnapshot
    from .live.writer import WriterState
    from .store.models import Execution, Judgement
    from .wal.probe import WalSample


MIN_SECONDS = 0.1  # a smaller interval would turn waiting into spinning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepflow-top",
        description="A live, read-only monitor of a StepFlow Monitor store.",
        epilog="PATH is a storage root, its database/ folder or the .db file "
        "(default: $STEPFLOW_STORAGE_PATH, else ./storage).",
    )
    parser.add_argument("path", nargs="?", metavar="PATH")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--once", action="store_true", help="print one snapshot and exit")
    modes.add_argument("--events", action="store_true", help="print changes as JSON lines")
    modes.add_argument("--check", action="store_true",
                       help="run the health checks once, as a monitoring plugin: exit 0 OK, "
                       "1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    modes.add_argument("--demo", action="store_true",
                       help="run a simulated StepFlow writer in a temporary folder and watch it")
    modes.add_argument("--demo-writer", metavar="DIR", type=Path,
                       help="only run the simulated writer, creating DIR as a storage root")
    parser.add_argument("--json", action="store_true",
                        help="with --once or --check: machine-readable output")
    parser.add_argument("--full", action="store_true",
                        help="with --check: run the full integrity_check instead of quick_check")
    parser.add_argument("--integrity-every", type=float, metavar="SECONDS",
                        help="in the TUI or with --events: run quick_check every SECONDS "
                        "(off by default)")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="with --once: at most N executions, newest first (default 100)")
    parser.add_argument("--seconds", type=float, metavar="S",
                        help="with --events or --demo-writer: stop after S seconds")
    parser.add_argument("--speed", type=float, default=1.0, metavar="X",
                        help="with --demo/--demo-writer: run the simulated scripts X times faster")
    parser.add_argument("--save-style", choices=("replace", "update"), default="replace",
                        help="with --demo/--demo-writer: how the simulated service saves rows "
                        "(INSERT OR REPLACE as the real one, or UPDATE)")
    parser.add_argument("--poll", type=float, nargs="?", const=1.0, metavar="SECONDS",
                        help="poll every SECONDS (default 1) instead of watching for file "
                        "events, for filesystems without inotify")
    parser.add_argument("--refresh", type=float, metavar="SECONDS",
                        help="fallback refresh interval when file events are used (default 5, "
                        "or what +/- chose last time)")
    parser.add_argument("--stall-after", type=float, default=DEFAULT_STALL_AFTER,
                        metavar="SECONDS", help="a run between steps with no change for this "
                        f"long is shown as stalled (default {DEFAULT_STALL_AFTER:g})")
    parser.add_argument("--writer-tz", metavar="ZONE",
                        help="the zone the service writes its timestamps in: +08:00, "
                        "Asia/Shanghai or local (default: inferred from file times)")
    parser.add_argument("--execution", metavar="ID",
                        help="with --once --json: print this execution in full, with its "
                        "steps and artifacts")
    parser.add_argument("--bell", action="store_true",
                        help="ring the terminal bell when an execution fails")
    parser.add_argument("--version", action="version", version=f"stepflow-top {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.limit < 1:
        return _fail("--limit must be at least 1")
    for flag in ("poll", "refresh", "stall_after", "integrity_every", "speed"):
        value = getattr(args, flag)
        if value is not None and value < MIN_SECONDS:
            return _fail(f"--{flag.replace('_', '-')} must be at least {MIN_SECONDS:g}")
    writer_tz = "infer"
    if args.writer_tz is not None:
        from .live.writer import parse_writer_tz

        try:
            writer_tz = parse_writer_tz(args.writer_tz)
        except ValueError as exc:
            return _fail(str(exc))
    args.writer_tz = writer_tz
    if args.execution is not None and not (args.once and args.json):
        return _fail("--execution works with --once --json")
    try:
        if args.demo_writer is not None:
            from .demo import writer

            return writer.main(_writer_argv(args.demo_writer, args))
        if args.demo:
            return run_demo(args)
        paths = locate_store(args.path)
        if args.once:
            return run_once(paths, args)
        if args.events:
            import asyncio

            from .events import run_events

            return asyncio.run(run_events(
                paths, seconds=args.seconds, fallback=args.refresh or 5.0, poll=args.poll,
                stall_after=args.stall_after, integrity_every=args.integrity_every,
                writer_tz=args.writer_tz))
        if args.check:
            from .checks import run_check

            return run_check(paths, full=args.full, as_json=args.json)
        return run_app(paths, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error for the user.
        sys.stderr.close()
        return 0


def _fail(message: str) -> int:
    print(f"stepflow-top: {message}", file=sys.stderr)
    return 2


def _writer_argv(root: Path, args: argparse.Namespace) -> list[str]:
    argv = [str(root), "--speed", str(args.speed), "--save-style", args.save_style]
    if args.seconds is not None:
        argv += ["--seconds", str(args.seconds)]
    return argv


# -- --once ----------------------------------------------------------------
def run_once(paths: StorePaths, args: argparse.Namespace) -> int:
    """Print one snapshot; exit 0, 2 with one line when the store cannot be read or
    the ``--execution`` is not in it."""
    from .live.refresher import Refresher, ViewRequest

    refresher = Refresher(paths, stall_after=args.stall_after, writer_tz=args.writer_tz)
    try:
        request = ViewRequest(limit=args.limit, execution_id=args.execution)
        snapshot = refresher.refresh(request, datetime.now(), force=True, tables=True)
    finally:
        refresher.close()
    if snapshot.error:
        return _fail(snapshot.error)
    sample = snapshot.sample
    if sample is None:
        print("stepflow-top: cannot read the WAL state (the probe process did not answer)",
              file=sys.stderr)
    if args.execution is not None:
        if snapshot.detail is None:
            return _fail(f"no execution {literal(args.execution)} in {paths.database}")
        print(json.dumps(execution_json(snapshot), indent=2))
    elif args.json:
        document = snapshot_json(paths, snapshot)
        document["database"] = sample.database_dict() if sample else None
        document["wal"] = sample.wal_dict() if sample else None
        print(json.dumps(document, indent=2))
    else:
        print(snapshot_text(paths, snapshot))
        if sample is not None:
            print()
            print(wal_text(sample))
    return 0


def wal_text(sample: WalSample) -> str:
    """Two lines on the database file and its WAL for ``--once``."""
    db = sample.database_dict()
    line = (f"database {formatting.size(db.get('size_bytes'))}, {db.get('page_count')} pages "
            f"of {db.get('page_size')} bytes, {db.get('freelist_count')} free")
    if not sample.wal_exists:
        return line + "\nwal: no -wal file (no writer has it open)"
    wal = sample.wal_dict()
    readers = ", ".join(str(p) for p in wal.get("readers") or []) or "none"
    return line + (
        f"\nwal {formatting.size(wal.get('size_bytes'))}: {wal.get('frames')} frames, "
        f"{wal.get('backfilled')} backfilled, {wal.get('pending')} pending, "
        f"checkpoint seq {wal.get('checkpoint_seq')}, salt-1 {wal.get('salt1')}, "
        f"readers {readers}"
    )


def snapshot_json(paths: StorePaths, snapshot: StoreSnapshot) -> dict:
    """The ``--once --json`` document (see README "Modes")."""
    judgement = snapshot.judgement()
    counts = snapshot.counts
    return {
        "store": {
            "root": str(paths.root),
            "database": str(paths.database),
            "journal_mode": snapshot.journal_mode,
        },
        "writer": snapshot.writer.to_json(),
        "counts": {
            "executions": counts.executions,
            "steps": counts.steps,
            "artifacts": counts.artifacts,
            "by_status": counts.by_status(judgement),
        },
        "executions": [_execution_summary(e, judgement) for e in snapshot.executions],
    }


def _execution_summary(e: Execution, judgement: Judgement) -> dict:
    return {
        "id": e.id,
        "name": e.name,
        "status": e.effective_status(judgement).value,
        "stored_status": e.stored_status,
        "inferred": e.inferred_from(judgement),
        "user": e.user_name,
        "created_at": e.created_at_text,
        "started_at": e.started_at_text,
        "completed_at": e.completed_at_text,
        "duration_s": _round(e.duration(judgement)),
        "steps_total": e.progress[1],
        "steps_finished": e.progress[0],
        "current_step": e.current_step,
        "exit_code": e.exit_code,
    }


def execution_json(snapshot: StoreSnapshot) -> dict:
    """``--once --json --execution ID``: one execution in full, with effective and
    stored statuses of the run and each step, and its artifacts."""
    judgement = snapshot.judgement()
    detail = snapshot.detail
    e = detail.execution
    document = _execution_summary(e, judgement)
    document.update({
        "command": e.command,
        "working_directory": e.working_directory,
        "error_message": e.error_message,
        "environment": e.environment,
        "tags": e.tags,
        "metadata": e.metadata,
        "writer": snapshot.writer.to_json(),
        "steps": [
            {
                "step_index": v.step.index,
                "name": v.step.name,
                "status": v.status,
                "stored_status": v.step.status,
                "inferred": v.inferred,
                "exit_code": v.step.exit_code,
                "error_message": v.step.error_message,
                "started_at": _iso(v.step.started_at),
                "completed_at": _iso(v.step.completed_at),
                "duration_s": _round(v.duration(judgement.now)),
                "metadata": v.step.metadata,
            }
            for v in detail.step_views(judgement)
        ],
        "artifacts": [
            {
                "id": a.id, "name": a.name, "file_path": a.file_path, "file_size": a.file_size,
                "artifact_type": a.artifact_type, "step_id": a.step_id, "exists": a.exists,
            }
            for a in detail.artifacts
        ],
    })
    return document


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def snapshot_text(paths: StorePaths, snapshot: StoreSnapshot) -> str:
    judgement = snapshot.judgement()
    now = judgement.now
    counts = snapshot.counts
    by_status = "  ".join(
        f"{Status(word).label if word in Status._value2member_map_ else word} {n}"
        for word, n in sorted(counts.by_status(judgement).items())
    )
    lines = [
        f"{paths.database}  journal={snapshot.journal_mode}  "
        f"executions={counts.executions} steps={counts.steps} artifacts={counts.artifacts}",
        writer_text(snapshot.writer),
        by_status,
        "",
        f"{'STATUS':<12} {'NAME':<24} {'USER':<10} {'STARTED':<14} {'DURATION':>8} "
        f"{'STEPS':>5}  {'CURRENT STEP':<22} {'EXIT':>4}",
    ]
    for e in snapshot.executions:
        status = e.effective_status(judgement)
        exit_code = "" if e.exit_code is None else str(e.exit_code)
        lines.append(
            f"{status.label:<12} {_cut(e.name, 24):<24} {_cut(e.user_name, 10):<10} "
            f"{formatting.clock_time(e.start, now):<14} "
            f"{formatting.duration(e.duration(judgement)):>8} "
            f"{formatting.progress(*e.progress):>5}  {_cut(e.current_step, 22):<22} {exit_code:>4}"
        )
    return "\n".join(lines)


def writer_text(writer: WriterState) -> str:
    """One line on the service for ``--once``."""
    if writer.attached is None:
        line = "service: unknown (locks cannot be read here)"
    elif writer.attached:
        line = "service: " + ", ".join(literal(h.describe()) for h in writer.holders)
    else:
        line = "service: none has the database open (unfinished runs are lost)"
    return line + f"; writer time {format_offset(writer.offset)} ({writer.offset_source})"


def _cut(value: str | None, width: int) -> str:
    return formatting.cut(literal(value), width)


# -- TUI and demo ------------------------------------------------------------
def run_app(paths: StorePaths, args: argparse.Namespace, on_hang_up=None) -> int:
    """Run the TUI; ``on_hang_up`` is called if the terminal goes away."""
    from concurrent.futures import ThreadPoolExecutor

    from .live.refresher import Refresher, ViewRequest

    # The first refresh runs while Textual is imported and starts (~0.4 s): the
    # rows are ready when the screen is.
    refresher = Refresher(paths, stall_after=args.stall_after, writer_tz=args.writer_tz)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(refresher.refresh, ViewRequest(), datetime.now(), force=True)
        from .ui.app import StepflowTop

    app = StepflowTop(
        paths,
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
    app.run()
    return app.return_code or 0


def run_demo(args: argparse.Namespace) -> int:
    """Run the simulated writer in a child process in a temporary storage root,
    watch it, and remove the folder on exit."""
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

    try:
        return run_app(locate_store(root), args, on_hang_up=clean_up)
    finally:
        clean_up()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
