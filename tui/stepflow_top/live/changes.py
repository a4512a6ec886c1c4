"""Turning saves into status-change events, with nothing missed between samples.

INSERT OR REPLACE gives every saved row a new, larger rowid (STEPFLOW_STORE.md), so
``rowid > mark`` returns every execution and step saved since the last look, however
sparse the looks. A short-lived intermediate state (a step saved running, then
completed, between two looks) may be skipped; a final status never is.
"""

from __future__ import annotations

import time
from datetime import datetime

from ..store.models import FINAL_EXECUTION, FINISHED_STEP, Status
from ..store.queries import StoreReader

MAX_REMEMBERED_STEPS = 50_000


class ChangeTracker:
    """Remembers statuses and reports changes as event dicts.

    Events (``ts`` is unix seconds when observed):
    ``{"ts", "type": "execution", "id", "name", "status", "previous"}`` with the
    effective status, and ``{"ts", "type": "step", "execution_id", "step_index",
    "name", "status", "previous"}``. ``previous`` is None for a row first seen.
    """

    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader
        self.marks = (0, 0)
        self.executions: dict[str, str] = {}
        self.steps: dict[str, str] = {}

    def start(self, now: datetime) -> None:
        """Take the current state as the baseline (no events for it)."""
        self.marks = self.reader.max_rowids()
        self.steps = {s.id: s.status for s in self.reader.live_steps()}
        stall = self.reader.stall_after
        self.executions = {
            e.id: e.effective_status(now, stall).value for e in self.reader.live_executions()
        }

    def poll(self, now: datetime) -> list[dict]:
        """Events for everything saved since the previous call (or ``start``), plus
        live executions whose effective status moved with time (stalled)."""
        ts = time.time()
        saved_executions, saved_steps = self.reader.saved_since(*self.marks)
        self.marks = (
            max([self.marks[0], *(r for r, _ in saved_executions)]),
            max([self.marks[1], *(r for r, _ in saved_steps)]),
        )
        events: list[dict] = []
        for _rowid, step in saved_steps:
            previous = self.steps.get(step.id)
            if previous != step.status:
                events.append({
                    "ts": ts, "type": "step", "execution_id": step.execution_id,
                    "step_index": step.index, "name": step.name,
                    "status": step.status, "previous": previous,
                })
            self.steps[step.id] = step.status
        if len(self.steps) > MAX_REMEMBERED_STEPS:
            self.steps = {k: v for k, v in self.steps.items() if v not in FINISHED_STEP}

        affected = {e.id for _r, e in saved_executions}
        affected |= {s.execution_id for _r, s in saved_steps}
        affected |= set(self.executions)  # live ones can turn stalled with time
        stall = self.reader.stall_after
        for execution in self.reader.executions_by_id(affected):
            status = execution.effective_status(now, stall).value
            previous = self.executions.get(execution.id)
            if previous != status:
                events.append({
                    "ts": ts, "type": "execution", "id": execution.id,
                    "name": execution.name, "status": status, "previous": previous,
                })
            if status in FINAL_EXECUTION or status == Status.UNKNOWN.value:
                self.executions.pop(execution.id, None)
            else:
                self.executions[execution.id] = status
        return events
