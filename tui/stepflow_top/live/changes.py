"""The change feed: status changes as event dicts, whatever way the writer saves rows.

The real service saves with ``INSERT OR REPLACE`` (a new, larger rowid per save), but
another writer may use plain ``UPDATE`` (rowid kept), and housekeeping deletes rows, after
which SQLite's next rowids restart below the deleted ones (STEPFLOW_STORE.md). So rows are
found three ways, and only the union is trusted:

* **new or re-saved**: ``rowid > mark`` in executions and steps (cheap; the mark resets
  when the largest rowid goes backwards instead of silencing the feed);
* **changed**: every execution that can still change (not final in its row: a bounded
  set) is re-read by primary key with its steps on every poll;
* **new by id**: the newest executions by ``created_at`` whose ids were not seen before
  (an insert that reused a rowid below the mark);
* **deleted**: a tracked execution that is gone, and row counts that fell by more than
  the deletes seen one by one (a bulk housekeeping delete: one summary event).

Statuses are effective ones (``Execution.effective_status``, ``effective_steps``): a
step that the service ended implicitly reports ``completed`` with ``inferred`` saying
why, and runs whose service is gone report ``lost``. A short-lived intermediate state
between two polls may be skipped; a final status never is.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from ..store.models import FINAL_EXECUTION, Execution, Judgement, Status, effective_steps
from ..store.queries import StoreReader

NEWEST_WINDOW = 50  # newest executions checked for unseen ids on every poll
REMEMBERED_FINAL = 10_000  # final executions remembered so a re-save is not news


class ChangeTracker:
    """Remembers statuses and reports changes as event dicts (``ts``: unix seconds
    when observed):

    ``{"ts", "type": "execution", "id", "name", "status", "previous", "stored_status",
    "inferred", "failed_step"}`` (``previous`` None for a run first seen; ``failed_step``
    the first failed step's name, for a failed run); ``{"ts", "type": "step",
    "execution_id", "step_index", "name", "status", "previous", "inferred"}``;
    ``{"ts", "type": "execution_deleted", "id", "name"}`` and, for deletes not seen
    one by one, ``{"ts", "type": "executions_deleted", "count"}``.

    Call ``poll`` inside an open ``StoreReader`` session. The first poll (or the first
    after ``reset``) takes the baseline and reports nothing.
    """

    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader
        self.reset()

    def reset(self) -> None:
        """Forget everything (a database replaced by another file)."""
        self.started = False
        self.marks = (0, 0, 0)  # executions max rowid, executions count, steps max rowid
        self.live: dict[str, Execution] = {}
        self.statuses: dict[str, str] = {}
        self.steps: dict[str, dict[str, str]] = {}  # execution id -> step id -> status
        self.final: OrderedDict[str, str] = OrderedDict()
        self.newest: set[str] = set()

    @property
    def live_executions(self) -> tuple[Execution, ...]:
        """The executions not final in their rows, as of the last poll (with step
        aggregates): what ``Counts.live`` needs, read anyway by every poll."""
        return tuple(self.live.values())

    def poll(self, judgement: Judgement) -> list[dict]:
        """Events for everything that changed since the previous poll."""
        reader = self.reader
        marks = reader.table_marks()
        newest = reader.newest_ids(NEWEST_WINDOW)
        if not self.started:
            self._baseline(marks, newest, judgement)
            return []
        ts = time.time()
        candidates = set(self.live) | (set(newest) - self.newest)
        if marks[0] >= self.marks[0]:
            candidates.update(reader.rowids_since("executions", self.marks[0]))
        if marks[2] >= self.marks[2]:
            candidates.update(reader.rowids_since("steps", self.marks[2]))
        candidates.discard("")
        rows = {e.id: e for e in reader.executions_by_id(candidates)}
        steps = reader.steps_of(rows)
        events: list[dict] = []
        new = deleted = 0
        for execution_id in list(self.live):
            if execution_id not in rows:
                gone = self.live.pop(execution_id)
                self.statuses.pop(execution_id, None)
                self.steps.pop(execution_id, None)
                deleted += 1
                events.append({"ts": ts, "type": "execution_deleted", "id": gone.id,
                               "name": gone.name})
        for execution in rows.values():
            first_seen = execution.id not in self.statuses and execution.id not in self.final
            new += first_seen
            events += self._execution_events(execution, steps.get(execution.id, []),
                                             judgement, ts)
        # Live runs can turn stalled or lost with the clock or the writer alone.
        unexplained = self.marks[1] + new - deleted - marks[1]
        if unexplained > 0:
            events.append({"ts": ts, "type": "executions_deleted", "count": unexplained})
        self.marks = marks
        self.newest = set(newest)
        return events

    def _baseline(self, marks, newest, judgement: Judgement) -> None:
        self.marks, self.newest, self.started = marks, set(newest), True
        for execution in self.reader.live_executions():
            self.live[execution.id] = execution
            self.statuses[execution.id] = execution.effective_status(judgement).value
        for execution_id, steps in self.reader.steps_of(self.live).items():
            lost = self.statuses.get(execution_id) == Status.LOST.value
            views = effective_steps(self.live[execution_id], steps, lost)
            self.steps[execution_id] = {v.step.id: v.status for v in views}

    def _execution_events(self, execution: Execution, steps, judgement: Judgement,
                          ts: float) -> list[dict]:
        status = execution.effective_status(judgement)
        previous = self.statuses.get(execution.id, self.final.get(execution.id))
        events = []
        views = effective_steps(execution, steps, status is Status.LOST)
        known = self.steps.get(execution.id, {})
        for view in views:
            if known.get(view.step.id) != view.status:
                events.append({
                    "ts": ts, "type": "step", "execution_id": execution.id,
                    "step_index": view.step.index, "name": view.step.name,
                    "status": view.status, "previous": known.get(view.step.id),
                    "inferred": view.inferred,
                })
        if previous != status.value:
            failed = next((v.step.name for v in views if v.status == "failed"), None)
            events.append({
                "ts": ts, "type": "execution", "id": execution.id, "name": execution.name,
                "status": status.value, "previous": previous,
                "stored_status": execution.stored_status,
                "inferred": execution.inferred_from(judgement),
                "failed_step": failed if status is Status.FAILED else None,
            })
        if execution.stored_status in FINAL_EXECUTION or status is Status.UNKNOWN:
            self.live.pop(execution.id, None)
            self.statuses.pop(execution.id, None)
            self.steps.pop(execution.id, None)
            self.final[execution.id] = status.value
            self.final.move_to_end(execution.id)
            while len(self.final) > REMEMBERED_FINAL:
                self.final.popitem(last=False)
        else:
            self.live[execution.id] = execution
            self.statuses[execution.id] = status.value
            self.steps[execution.id] = {v.step.id: v.status for v in views}
        return events

    def recheck(self, judgement: Judgement) -> list[dict]:
        """Events for live runs whose effective status moved with the clock or the
        writer alone (stalled, lost), without reading the store."""
        ts = time.time()
        events = []
        for execution in self.live.values():
            status = execution.effective_status(judgement).value
            if self.statuses.get(execution.id) != status:
                events.append({
                    "ts": ts, "type": "execution", "id": execution.id, "name": execution.name,
                    "status": status, "previous": self.statuses.get(execution.id),
                    "stored_status": execution.stored_status,
                    "inferred": execution.inferred_from(judgement), "failed_step": None,
                })
                self.statuses[execution.id] = status
        return events
