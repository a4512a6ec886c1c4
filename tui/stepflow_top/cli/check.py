"""``stepflow-top PATH --check``: the health checks once, as a monitoring plugin.

Exit status and first line follow the Nagios plugin API as the Monitoring Plugins
development guidelines keep it (monitoring-plugins.org/doc/guidelines.html: "Plugin
Return Codes", "Plugin Output", "Performance data"), so cron, Nagios, Icinga, Naemon,
Sensu and Zabbix read it as they read any plugin:

    STEPFLOW OK - 1204 executions, 2 running, WAL 3.9 MiB | executions=1204;;;0 ...

0 OK; 1 WARNING (the store is sound but needs a look: lost runs, a WAL growing with no
checkpoint, starved checkpoints, odd log files); 2 CRITICAL (integrity or foreign-key
failures, rows that contradict each other); 3 UNKNOWN (the store cannot be opened or a
check could not run). Then one line per check with its findings indented. Store text is
printed literally (control characters spelled out), and ``|`` is spelled ``\\x7c`` so
that no name can start performance data.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from ..live.checks import CheckReport, WalWatch, run_checks, summary
from ..store.locate import StorePaths
from ..store.text import literal
from ..wal.integrity import CheckResult, State

SERVICE = "STEPFLOW"
SHOWN_PER_CHECK = 20
_MARKS = {State.OK: "✓", State.WARNING: "!", State.CRITICAL: "✗", State.UNKNOWN: "?",
          State.CANCELLED: "⊘"}


def run_check(paths: StorePaths, args: argparse.Namespace) -> int:
    """Run every check once (``integrity_check`` instead of ``quick_check`` with
    ``--full``), print the report (text, or JSON with ``--json``) and return the plugin
    exit status."""
    watch = WalWatch(paths.database)
    try:
        watch.sample()
        report = run_checks(paths, "all-full" if args.full else "all", now=datetime.now(),
                            writer_attached=watch.writer_attached, wal=watch)
    finally:
        watch.close()
    return _print(report, args.json)


def report_unusable(error: str, *, as_json: bool) -> int:
    """Print the report of a path that cannot lead to a store (``error``, one line):
    UNKNOWN, exit status 3."""
    return _print(CheckReport([], error=error), as_json)


def _print(report: CheckReport, as_json: bool) -> int:
    print(json.dumps(document(report), indent=2) if as_json else text(report))
    return report.state.exit_code


def _plain(value: object) -> str:
    return literal(value).replace("|", "\\x7c")


def first_line(report: CheckReport) -> str:
    """``STEPFLOW <STATE> - <summary> | <perfdata>``; a cancelled run says UNKNOWN, the
    word of its exit status (the summary says it was cancelled)."""
    state = State.UNKNOWN if report.state is State.CANCELLED else report.state
    perf = " ".join(str(p) for p in report.perfdata)
    return f"{SERVICE} {state.value} - {_plain(summary(report))} | {perf}"


def _check_lines(r: CheckResult) -> list[str]:
    sev = r.severity
    lines = [f"{_MARKS[sev]} {r.name:<20} {sev.value:<9} {r.duration_s:6.2f}s"]
    body = ([r.reason] if r.reason else []) + \
        [f"{f.severity.value} {f.text}" for f in r.findings] + [f"note: {n}" for n in r.notes]
    lines += [f"    {_plain(line)}" for line in body[:SHOWN_PER_CHECK]]
    if len(body) > SHOWN_PER_CHECK:
        lines.append(f"    ... and {len(body) - SHOWN_PER_CHECK} more (--json shows all)")
    return lines


def text(report: CheckReport) -> str:
    """The plugin output: the first line, then each check and its findings."""
    lines = [first_line(report)]
    for r in report.results:
        lines += _check_lines(r)
    return "\n".join(lines)


def document(report: CheckReport) -> dict:
    """The ``--check --json`` document: ``state``, ``exit_code``, ``summary`` (the first
    line), then :meth:`CheckReport.to_dict` (``checks`` with per-check ``severity``,
    ``counts``, ``perfdata``, ...)."""
    return {"state": report.state.value, "exit_code": report.state.exit_code,
            "summary": first_line(report), **report.to_dict()}
