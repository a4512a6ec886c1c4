"""Command line: the parser, its checks, and the choice of a mode.

One module per mode (:mod:`.once`, :mod:`.events`, :mod:`.check`, :mod:`.wait`,
:mod:`.metrics`, :mod:`.demo`, :mod:`.tui`), each imported only when it runs: start-up
time is time to first rows, so Textual stays out of every mode but the monitor.

Exit status: what the mode returns; 2 for a usage error or a store that cannot be
read; with ``--check`` every failure to run is 3 (UNKNOWN), as monitoring plugins do
(monitoring-plugins.org/doc/guidelines.html, "Plugin Return Codes"); ``--wait`` exits 0
when the run completed and 1 when it failed, was cancelled or is lost, as ``gh run
watch --exit-status`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..store.locate import PathProblem, locate_stores
from ..store.models import DEFAULT_STALL_AFTER

MIN_SECONDS = 0.1  # a smaller interval would turn waiting into spinning
DEFAULT_LIMIT = 100
USAGE = 2
CHECK_UNKNOWN = 3

USAGE_LINES = """stepflow-top [PATH...] [options]       the live monitor (PATH or NAME=PATH)
       stepflow-top [PATH...] --once [--json] [--limit N] [--execution ID]
       stepflow-top [PATH...] --events [--seconds S] [--integrity-every S]
       stepflow-top [PATH...] --check [--full] [--json]
       stepflow-top [PATH...] --wait EXECUTION
       stepflow-top [PATH...] --metrics [HOST:]PORT | --metrics-textfile DIR
       stepflow-top --print-alert-rules | --print-grafana-dashboard
       stepflow-top --demo [--speed X]
       stepflow-top --demo-writer DIR [--seconds S] [--speed X]"""

MONITOR, DEMO, DEMO_WRITER = "monitor", "demo", "demo_writer"
EXPORTING = frozenset({"metrics", "metrics_textfile"})
PRINTING = frozenset({"print_alert_rules", "print_grafana_dashboard"})
WATCHING = frozenset({MONITOR, "events", DEMO}) | EXPORTING
READING = WATCHING | {"once", "wait"}
SIMULATED = frozenset({DEMO, DEMO_WRITER})

#: Which modes use each option (by its ``dest``), and how to say so.
USED_BY: dict[str, tuple[frozenset[str], str]] = {
    "paths": (frozenset({MONITOR, "once", "events", "check", "wait"}) | EXPORTING,
             "the monitor, --once, --events, --check, --wait or --metrics"),
    "json": (frozenset({"once", "check"}), "--once or --check"),
    "full": (frozenset({"check"}), "--check"),
    "limit": (frozenset({"once"}), "--once"),
    "execution": (frozenset({"once"}), "--once --json"),
    "seconds": (frozenset({"events"}) | SIMULATED, "--events, --demo or --demo-writer"),
    "integrity_every": (WATCHING, "the monitor, --events, --metrics or --demo"),
    "poll": (WATCHING | {"wait"}, "the monitor, --events, --wait, --metrics or --demo"),
    "refresh": (WATCHING | {"wait"}, "the monitor, --events, --wait, --metrics or --demo"),
    "bell": (frozenset({MONITOR, DEMO}), "the monitor or --demo"),
    "stall_after": (READING, "the monitor, --once, --events, --wait, --metrics or --demo"),
    "writer_tz": (READING, "the monitor, --once, --events, --wait, --metrics or --demo"),
    "speed": (SIMULATED, "--demo or --demo-writer"),
    "save_style": (SIMULATED, "--demo or --demo-writer"),
}


_NAMED = {MONITOR: "the monitor", DEMO_WRITER: "--demo-writer",
          "metrics_textfile": "--metrics-textfile",
          "print_alert_rules": "--print-alert-rules",
          "print_grafana_dashboard": "--print-grafana-dashboard"}


class UsageError(Exception):
    """A command line that cannot run; ``str()`` is one line for people."""


class Parser(argparse.ArgumentParser):
    """Raises :class:`UsageError` instead of printing and exiting, so that ``--check``
    can report a usage error as UNKNOWN (3) and the other modes as 2."""

    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> Parser:
    parser = Parser(
        prog="stepflow-top",
        usage=USAGE_LINES,
        description="A live, read-only monitor of a StepFlow Monitor store.",
        epilog="PATH is a storage root, its database/ folder or the .db file "
        "(default: $STEPFLOW_STORAGE_PATH, else ./storage). Nothing in the store is "
        "ever written.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=argparse.SUPPRESS)
    group = parser.add_argument_group("modes (at most one; without one, the live monitor)")
    modes = group.add_mutually_exclusive_group()
    modes.add_argument("--once", action="store_true", help="print one snapshot and exit")
    modes.add_argument("--events", action="store_true", help="print changes as JSON lines")
    modes.add_argument("--check", action="store_true",
                       help="run the health checks once, as a monitoring plugin: exit 0 OK, "
                       "1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    modes.add_argument("--metrics", nargs="?", const="", metavar="[HOST:]PORT",
                       help="serve Prometheus metrics on http://HOST:PORT/metrics (default "
                       "127.0.0.1:10101) until interrupted")
    modes.add_argument("--metrics-textfile", metavar="DIR", type=Path,
                       help="write DIR/stepflow.prom after every look, for node_exporter's "
                       "textfile collector")
    modes.add_argument("--print-alert-rules", action="store_true",
                       help="print Prometheus alert rules for these metrics")
    modes.add_argument("--print-grafana-dashboard", action="store_true",
                       help="print a Grafana dashboard (JSON) for these metrics")
    modes.add_argument("--wait", metavar="EXECUTION",
                       help="follow one run (an id, an id prefix, a name: its newest run, "
                       "or latest) until it ends: exit 0 completed, 1 failed, cancelled or "
                       "lost, 2 no such run (or an ambiguous one) or no store readable")
    modes.add_argument("--demo", action="store_true",
                       help="run a simulated StepFlow writer in a temporary folder and watch it")
    modes.add_argument("--demo-writer", metavar="DIR", type=Path,
                       help="only run the simulated writer, creating DIR as a storage root")

    output = parser.add_argument_group("--once and --check")
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--limit", type=int, metavar="N",
                        help=f"with --once: at most N executions, newest first "
                        f"(default {DEFAULT_LIMIT})")
    output.add_argument("--execution", metavar="ID",
                        help="with --once --json: print this execution in full, with its "
                        "steps and artifacts")
    output.add_argument("--full", action="store_true",
                        help="with --check: run the full integrity_check instead of quick_check")

    watching = parser.add_argument_group("watching (the monitor, --events, --demo)")
    watching.add_argument("--poll", type=float, nargs="?", const=1.0, metavar="SECONDS",
                          help="poll every SECONDS (default 1) instead of watching for file "
                          "events, for filesystems without inotify")
    watching.add_argument("--refresh", type=float, metavar="SECONDS",
                          help="fallback refresh interval when file events are used (default "
                          "5, or what +/- chose last time)")
    watching.add_argument("--integrity-every", type=float, metavar="SECONDS",
                          help="run quick_check every SECONDS (off by default)")
    watching.add_argument("--seconds", type=float, metavar="S",
                          help="with --events: stop after S seconds; with --demo or "
                          "--demo-writer: the simulated service stops after S seconds")
    watching.add_argument("--bell", action="store_true",
                          help="in the monitor: ring the terminal bell when an execution fails")

    reading = parser.add_argument_group("reading the store (the monitor, --once, --events)")
    reading.add_argument("--stall-after", type=float, metavar="SECONDS",
                         help="a run between steps with no change for this long is shown as "
                         f"stalled (default {DEFAULT_STALL_AFTER:g})")
    reading.add_argument("--writer-tz", metavar="ZONE",
                         help="the zone the service writes its timestamps in: +08:00, "
                         "Asia/Shanghai or local (default: inferred from file times)")

    simulated = parser.add_argument_group("the simulated service (--demo, --demo-writer)")
    simulated.add_argument("--speed", type=float, metavar="X",
                           help="run the simulated scripts X times faster (default 1)")
    simulated.add_argument("--save-style", choices=("replace", "update"),
                           help="how the simulated service saves rows: INSERT OR REPLACE as "
                           "the real one (default), or UPDATE")
    parser.add_argument("--version", action="version", version=f"stepflow-top {__version__}")
    return parser


def mode_of(args: argparse.Namespace) -> str:
    """``once``, ``events``, ``check``, ``wait``, ``metrics``, ``metrics_textfile``,
    ``print_alert_rules``, ``print_grafana_dashboard``, ``demo``, ``demo_writer`` or
    ``monitor``."""
    for mode in ("once", "events", "check", DEMO, *sorted(PRINTING)):
        if getattr(args, mode):
            return mode
    for mode in ("wait", *sorted(EXPORTING)):
        if getattr(args, mode) is not None:
            return mode
    return DEMO_WRITER if args.demo_writer is not None else MONITOR


def validate(args: argparse.Namespace) -> None:
    """Refuse options the chosen mode would ignore and values out of range; fill in the
    defaults of the rest. Raises :class:`UsageError`."""
    mode = mode_of(args)
    named = _NAMED.get(mode, f"--{mode}")
    for dest, (modes, where) in USED_BY.items():
        if getattr(args, dest) in (None, False, []) or mode in modes:
            continue
        flag = "PATH" if dest == "paths" else "--" + dest.replace("_", "-")
        raise UsageError(f"{flag} is not used by {named}; it works with {where}")
    if args.execution is not None and not args.json:
        raise UsageError("--execution works with --once --json")
    if args.wait is not None and not args.wait.strip():
        raise UsageError("--wait needs an execution: an id, an id prefix, a name or latest")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    for dest in ("poll", "refresh", "stall_after", "integrity_every", "speed", "seconds"):
        value = getattr(args, dest)
        if value is not None and not value >= MIN_SECONDS:  # NaN too
            raise UsageError(f"--{dest.replace('_', '-')} must be at least {MIN_SECONDS:g}")
    args.limit = DEFAULT_LIMIT if args.limit is None else args.limit
    args.stall_after = DEFAULT_STALL_AFTER if args.stall_after is None else args.stall_after
    args.speed = 1.0 if args.speed is None else args.speed
    args.save_style = args.save_style or "replace"
    if args.writer_tz is None:
        args.writer_tz = "infer"
    else:
        from ..live.writer import parse_writer_tz

        try:
            args.writer_tz = parse_writer_tz(args.writer_tz)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Run stepflow-top with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    checking = any(len(a) > 2 and "--check".startswith(a) for a in argv)
    try:
        args = build_parser().parse_args(argv)
        validate(args)
    except UsageError as exc:
        if checking:
            print(f"STEPFLOW UNKNOWN - {exc} (stepflow-top --help shows the options)")
            return CHECK_UNKNOWN
        print(f"stepflow-top: {exc} (stepflow-top --help shows the options)", file=sys.stderr)
        return USAGE
    try:
        return run(mode_of(args), args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error for the user.
        sys.stderr.close()
        return 0


def run(mode: str, args: argparse.Namespace) -> int:
    if mode == DEMO_WRITER:
        from .demo import run_writer

        return run_writer(args)
    if mode == DEMO:
        from .demo import run_demo

        return run_demo(args)
    if mode in PRINTING:
        from .metrics import run_print

        return run_print(mode)
    try:
        stores = locate_stores(args.paths)
    except PathProblem as exc:
        if mode == "check":
            from .check import report_unusable

            return report_unusable(str(exc), as_json=args.json)
        return fail(str(exc))
    # Every mode that reads a store takes several (USED_BY["paths"]).
    return _mode(mode)(stores, args)


def _mode(mode: str):
    if mode == "once":
        from .once import run_once as runner
    elif mode == "events":
        from .events import run_events as runner
    elif mode == "check":
        from .check import run_check as runner
    elif mode == "metrics":
        from .metrics import run_metrics as runner
    elif mode == "metrics_textfile":
        from .metrics import run_textfile as runner
    elif mode == "wait":
        from .wait import run_wait as runner
    else:
        from .tui import run_app as runner
    return runner


def fail(message: str) -> int:
    """Say ``message`` on stderr as one line; returns the usage/unreadable status, 2."""
    print(f"stepflow-top: {message}", file=sys.stderr)
    return USAGE

