"""``stepflow-top PATH --once``: one snapshot of the store, as a table or (``--json``) a
document (README "Modes"), then exit."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from .. import formatting
from ..live.writer import format_offset
from ..store.locate import StorePaths
from ..store.models import Status
from ..store.text import literal
from ..wal.probe import Probe, started_probes
from . import fail

if TYPE_CHECKING:
    from ..live.refresher import StoreSnapshot
    from ..live.writer import WriterState
    from ..store.models import Execution, Judgement
    from ..wal.probe import WalSample


def run_once(stores: list[StorePaths], args: argparse.Namespace) -> int:
    """Print one snapshot of each store; exit 0, or 2 with one line on stderr when a
    store cannot be read (the others are printed all the same) or, with
    ``--execution``, when no store holds it. With several stores the text has a section
    per store and ``--json`` prints ``{"stores": [...]}`` (one document each, its
    ``store.name`` saying which); with one, the document alone."""
    several = len(stores) > 1
    with started_probes(len(stores)) as probes:  # they start while _take imports
        taken = [(paths, _take(paths, args, probe)) for paths, probe in zip(stores, probes)]
    if args.execution is not None:
        return _print_execution(taken, args.execution)
    failed = False
    documents, sections = [], []
    for paths, snapshot in taken:
        if snapshot.error:
            failed = True
            print(f"stepflow-top: {paths.label + ': ' if several else ''}{snapshot.error}",
                  file=sys.stderr)
            documents.append({"store": _store_json(paths, None), "error": snapshot.error})
            sections.append(f"[{literal(paths.label)}]\n{snapshot.error}")
            continue
        sample = snapshot.sample
        if sample is None:
            print("stepflow-top: cannot read the WAL state (the probe process did not answer)",
                  file=sys.stderr)
        if args.json:
            document = snapshot_json(paths, snapshot)
            document["database"] = sample.database_dict() if sample else None
            document["wal"] = sample.wal_dict() if sample else None
            documents.append(document)
        else:
            text = snapshot_text(paths, snapshot)
            if sample is not None:
                text += "\n\n" + wal_text(sample)
            sections.append(f"[{literal(paths.label)}]\n{text}" if several else text)
    if args.json:
        if several:
            print(json.dumps({"stores": documents}, indent=2))
        elif not failed:
            print(json.dumps(documents[0], indent=2))
    elif several:
        print("\n\n".join(sections))
    elif not failed:
        print(sections[0])
    return 2 if failed else 0


def _take(paths: StorePaths, args: argparse.Namespace, probe: Probe) -> StoreSnapshot:
    from ..live.refresher import Refresher, ViewRequest

    refresher = Refresher(paths, stall_after=args.stall_after, writer_tz=args.writer_tz,
                          probe=probe)
    try:
        request = ViewRequest(limit=args.limit, execution_id=args.execution)
        return refresher.refresh(request, datetime.now(), force=True, tables=True)
    finally:
        refresher.close()


def _print_execution(taken: list[tuple[StorePaths, StoreSnapshot]], execution_id: str) -> int:
    """``--execution ID``: the first store that holds it, in full."""
    for _paths, snapshot in taken:
        if not snapshot.error and snapshot.detail is not None:
            print(json.dumps(execution_json(snapshot), indent=2))
            return 0
    errors = [f"{p.label}: {s.error}" if len(taken) > 1 else s.error
              for p, s in taken if s.error]
    where = ", ".join(p.label for p, _ in taken) if len(taken) > 1 else taken[0][0].database
    return fail("; ".join(errors) if len(errors) == len(taken)
                else f"no execution {literal(execution_id)} in {where}")


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
    """The ``--once --json`` document of one store (see README "Modes")."""
    judgement = snapshot.judgement()
    counts = snapshot.counts
    return {
        "store": _store_json(paths, snapshot.journal_mode),
        "writer": snapshot.writer.to_json(),
        "counts": {
            "executions": counts.executions,
            "steps": counts.steps,
            "artifacts": counts.artifacts,
            "by_status": counts.by_status(judgement),
        },
        "executions": [_execution_summary(e, judgement) for e in snapshot.executions],
    }


def _store_json(paths: StorePaths, journal_mode: str | None) -> dict:
    return {"name": paths.label, "root": str(paths.root), "database": str(paths.database),
            "journal_mode": journal_mode}


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
