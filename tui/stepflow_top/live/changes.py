"""The change feed: status changes as event dicts, whatever way the writer saves rows.

The real service saves with ``INSERT OR REPLACE`` (a new, larger rowid per save), but
another writer may use plain ``UPDATE`` (rowid kept), and housekeeping deletes rows, after
which SQLite's next rowids restart below the deleted ones (STEPFLOW_STORE.md). So rows are
found three ways, and only the union is trusted:

* **new or re-saved**: ``rowid > mark`` in executions and steps (cheap; the mark resets
  when the largest rowid goes backwards instead of silencing the feed);
* **changed**: every execution that can still change (not final in its row: a bounded
  set) is re-read by primary key on every poll; its steps are read again only when
  SQLite's print of them changed (``store.step_queries``), so unchanged runs cost two
  small queries and no Python work;
* **new by id**: the newest executions by ``created_at`` whose ids were not seen before
  (an insert that reused a rowid below the mark);
* **deleted**: a tracked execution that is gone, and a row count that fell by more than
  the deletes seen one by one (a bulk housekeeping delete: one summary event). The count
  walks an index (56 ms on a million rows), so it is taken every COUNT_EVERY seconds.

The tracker also keeps the executions per stored status up to date from what it sees
(``stored_counts``), so the header's counts need no ``GROUP BY`` per refresh; a count
that disagrees with them triggers a recount.

Statuses are effective ones (``Execution.effective_status``, ``effective_steps``): a
step that the service ended implicitly reports ``completed`` with ``inferred`` saying
why, and runs whose service is gone report ``lost``. A short-lived intermediate state
between two polls may be skipped; a final status never is.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from typing import Callable

from ..store.models import (
    FINAL_EXECUTION,
    Execution,
    Judgement,
    Status,
    effective_steps,
)
from ..store.queries import StoreReader

NEWEST_WINDOW = 50  # newest executions checked for unseen ids on every poll
COUNT_EVERY = 5.0  # seconds between row counts (bulk deletes are seen within this)
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

    def __init__(self, reader: StoreReader, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reader = reader
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything (a database replaced by another file)."""
        self.started = False
        self.marks = (0, 0)  # executions, steps: largest rowid seen
        self.stored_counts: Counter[str] = Counter()  # executions per stored status
        self._counted_at = 0.0
        self._uncounted = False
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

    def distrust_counts(self) -> None:
        """A poll failed half-way: check the counts at the next one."""
        self._counted_at = float("-inf")

    @property
    def executions(self) -> int:
        """Executions in the store, as of the last poll."""
        return sum(self.stored_counts.values())

    def poll(self, judgement: Judgement, *, recount: bool = False) -> list[dict]:
        """Events for everything that changed since the previous poll. ``recount``
        forces the row count (and, if it disagrees, the per-status counts) now."""
        reader = self.reader
        marks = reader.max_rowids()
        newest = reader.newest_ids(NEWEST_WINDOW)
        if not self.started:
            self._baseline(marks, newest, judgement)
            return []
        ts = time.time()
        candidates = set(self.live) | (set(newest) - self.newest)
        # A largest rowid that went backwards (the newest rows deleted) resets the mark.
        if marks[0] >= self.marks[0]:
            candidates.update(reader.rowids_since("executions", self.marks[0]))
        if marks[1] >= self.marks[1]:
            candidates.update(reader.rowids_since("steps", self.marks[1]))
        candidates.discard("")
        read = reader.executions_with_steps(candidates)
        rows = {e.id: e for e, _ in read}
        steps = {e.id: s for e, s in read}
        events: list[dict] = []
        for execution_id in list(self.live):
            if execution_id not in rows:
                gone = self.live.pop(execution_id)
                self.statuses.pop(execution_id, None)
                self.steps.pop(execution_id, None)
                self.stored_counts[gone.stored_status] -= 1
                events.append({"ts": ts, "type": "execution_deleted", "id": gone.id,
                               "name": gone.name})
        for execution in rows.values():
            # The same object back from the reader: none of its rows changed (see
            # store.step_queries), so only the clock or the writer can move its status.
            if (self.live.get(execution.id) is execution and self.statuses[execution.id]
                    == execution.effective_status(judgement).value):
                continue
            events += self._execution_events(execution, steps.get(execution.id, []),
                                             judgement, ts)
        self.marks = marks
        self.newest = set(newest)
        self._uncounted = True
        if recount or self.count_due:
            events += self.recount() or []
        return events

    @property
    def count_due(self) -> bool:
        """A poll saw changes since the last row count, and COUNT_EVERY has passed: call
        ``recount`` even if nothing else moved (a bulk delete may be the last change)."""
        return self._uncounted and self.clock() - self._counted_at >= COUNT_EVERY

    def recount(self) -> list[dict] | None:
        """Check the row count; on a mismatch (deletes not seen one by one, or a
        change the feed could not see) recount per status. Inside a reader session.
        Returns None when the counts were right, else the events (maybe none)."""
        ts = time.time()
        self._counted_at, self._uncounted = self.clock(), False
        count = self.reader.execution_count()
        known = self.executions
        if count == known:
            return None
        self.stored_counts = Counter(self.reader.stored_status_counts())
        if count < known:
            return [{"ts": ts, "type": "executions_deleted", "count": known - count}]
        return []

    def _baseline(self, marks, newest, judgement: Judgement) -> None:
        self.marks, self.newest, self.started = marks, set(newest), True
        self.stored_counts = Counter(self.reader.stored_status_counts())
        self._counted_at = self.clock()
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
        if previous is None:
            self.stored_counts[execution.stored_status] += 1  # a run first seen
        elif execution.id in self.live:
            before = self.live[execution.id].stored_status
            self.stored_counts[before] -= 1
            self.stored_counts[execution.stored_status] += 1
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
            events.append(_execution_event(execution, judgement, previous, ts,
                                           failed if status is Status.FAILED else None))
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
                events.append(_execution_event(execution, judgement,
                                               self.statuses.get(execution.id), ts))
                self.statuses[execution.id] = status
        return events


def _execution_event(execution: Execution, judgement: Judgement, previous: str | None,
                     ts: float, failed_step: str | None = None) -> dict:
    return {
        "ts": ts, "type": "execution", "id": execution.id, "name": execution.name,
        "status": execution.effective_status(judgement).value, "previous": previous,
        "stored_status": execution.stored_status,
        "inferred": execution.inferred_from(judgement), "failed_step": failed_step,
    }
