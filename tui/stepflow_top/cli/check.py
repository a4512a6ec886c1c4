"""``stepflow-top PATH --check``: the health checks once, as a monitoring plugin.

Exit status and first line follow the Nagios plugin API as the Monitoring Plugins
development guidelines keep it (monitoring-plugins.org/doc/guidelines.html: "Plugin
Return Codes", "Plugin Output", "Performance data"), so cron, Nagios, Icinga, Naemon,
Sensu and Zabbix read it as they read any plugin (performance data, with ``B`` for
bytes, is what Icinga, Naemon and Netdata graph):

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


def run_check(stores: list[StorePaths], args: argparse.Namespace) -> int:
    """Run every check once on each store (``integrity_check`` instead of
    ``quick_check`` with ``--full``), print the report (text, or JSON with ``--json``)
    and return the plugin exit status: with several stores, one plugin output whose
    state is the worst over them (:func:`several_text`, :func:`several_document`)."""
    reports = [(paths.label, _check(paths, args.full)) for paths in stores]
    if len(reports) == 1:
        return _print(reports[0][1], args.json)
    state = _worst(report for _label, report in reports)
    print(json.dumps(several_document(reports), indent=2) if args.json
          else several_text(reports))
    return state.exit_code


def _check(paths: StorePaths, full: bool) -> CheckReport:
    watch = WalWatch(paths.database)
    try:
        watch.sample()
        return run_checks(paths, "all-full" if full else "all", now=datetime.now(),
                          writer_attached=watch.writer_attached, wal=watch)
    finally:
        watch.close()


def report_unusable(error: str, *, as_json: bool) -> int:
    """Print the report of a path that cannot lead to a store (``error``, one line):
    UNKNOWN, exit status 3."""
    return _print(CheckReport([], error=error), as_json)


def _print(report: CheckReport, as_json: bool) -> int:
    print(json.dumps(document(report), indent=2) if as_json else text(report))
    return report.state.exit_code


def _plain(value: object) -> str:
    return literal(value).replace("|", "\\x7c")


def _worst(reports) -> State:
    return State.worst(r.state for r in reports)


def _word(state: State) -> str:
    """The state's word on the first line: a cancelled run says UNKNOWN, the word of
    its exit status (the summary says it was cancelled)."""
    return (State.UNKNOWN if state is State.CANCELLED else state).value


def first_line(report: CheckReport) -> str:
    """``STEPFLOW <STATE> - <summary> | <perfdata>``."""
    perf = " ".join(str(p) for p in report.perfdata)
    return f"{SERVICE} {_word(report.state)} - {_plain(summary(report))} | {perf}"


def several_first_line(reports: list[tuple[str, CheckReport]]) -> str:
    """The first line over several stores: the worst state, then each store's state
    and summary (``prod WARNING: lost_runs (1); ... / staging OK: ...``), then every
    store's perfdata labelled ``store:label``."""
    parts = [f"{label} {_word(r.state)}: {summary(r)}" for label, r in reports]
    perf = " ".join(str(p.of_store(label)) for label, r in reports for p in r.perfdata)
    return f"{SERVICE} {_word(_worst(r for _l, r in reports))} - " \
           f"{_plain(' / '.join(parts))} | {perf}"


def _check_lines(r: CheckResult, store: str | None = None) -> list[str]:
    sev = r.severity
    where = "" if store is None else f"{_plain(store)}: "
    lines = [f"{_MARKS[sev]} {where}{r.name:<20} {sev.value:<9} {r.duration_s:6.2f}s"]
    body = ([r.reason] if r.reason else []) + \
        [f"{f.severity.value} {f.text}" for f in r.findings] + [f"note: {n}" for n in r.notes]
    lines += [f"    {where}{_plain(line)}" for line in body[:SHOWN_PER_CHECK]]
    if len(body) > SHOWN_PER_CHECK:
        lines.append(f"    {where}... and {len(body) - SHOWN_PER_CHECK} more "
                     "(--json shows all)")
    return lines


def text(report: CheckReport) -> str:
    """The plugin output: the first line, then each check and its findings."""
    lines = [first_line(report)]
    for r in report.results:
        lines += _check_lines(r)
    return "\n".join(lines)


def several_text(reports: list[tuple[str, CheckReport]]) -> str:
    """The plugin output over several stores: :func:`several_first_line`, then each
    store's checks and findings, every line prefixed with its store; a store that could
    not be opened says why."""
    lines = [several_first_line(reports)]
    for label, report in reports:
        if report.error:
            lines.append(f"? {_plain(label)}: {_plain(report.error)}")
        for r in report.results:
            lines += _check_lines(r, label)
    return "\n".join(lines)


def document(report: CheckReport) -> dict:
    """The ``--check --json`` document: ``state``, ``exit_code``, ``summary`` (the first
    line), then :meth:`CheckReport.to_dict` (``checks`` with per-check ``severity``,
    ``counts``, ``perfdata``, ...)."""
    return {"state": report.state.value, "exit_code": report.state.exit_code,
            "summary": first_line(report), **report.to_dict()}


def several_document(reports: list[tuple[str, CheckReport]]) -> dict:
    """``--check --json`` over several stores: the worst ``state`` and its
    ``exit_code``, ``summary`` (the first line) and ``stores``: each store's
    :func:`document` with its ``store`` name."""
    state = _worst(r for _label, r in reports)
    return {"state": state.value, "exit_code": state.exit_code,
            "summary": several_first_line(reports),
            "stores": [{"store": label, **document(r)} for label, r in reports]}
