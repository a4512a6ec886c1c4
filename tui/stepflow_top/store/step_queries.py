"""Step rows, the aggregates they give an execution, and the change feed's queries.

Mixed into ``StoreReader`` (``store.queries``), which provides the session (``rows``,
``_select``, ``_has``), ``paths`` and ``writer_offset``.

Aggregating an execution's steps is the costly part of a refresh under a busy writer
(every live run and every row of the window, on every refresh: measured 124 ms per
refresh with 191 live runs of ten steps). So each aggregate is remembered with what it
was made from: the execution row as read, and a print of its step rows made by SQLite
itself. When both are unchanged the remembered ``Execution`` object itself is returned,
so callers can tell "nothing in its rows changed" by identity. A live run with no
running step is never served from memory: its aggregate also holds log-file times
(``os.stat``), which change without any row changing.

Two prints. The real service saves with ``INSERT OR REPLACE``, which gives the row a
new rowid (STEPFLOW_STORE.md), so the step rows' count and largest rowid show every
save and delete: the *rowid print*, read from the ``steps(execution_id)`` index alone
(about 1 ms for 270 live runs). A writer that saves with a plain ``UPDATE`` keeps the
rowid; only the *full print* (``group_concat`` of every column, ``quote``d: about 12 ms
for the same runs) shows those saves. So the full print is also taken every
``FULL_PRINT_EVERY`` seconds, and once it shows a change the rowid print missed, this
reader uses the full print from then on: such a store costs what it did, and its first
in-place save is seen at most ``FULL_PRINT_EVERY`` seconds late.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from .locate import StorePaths
from .models import (
    FINAL_EXECUTION,
    FINISHED_STEP,
    LIVE_STORED,
    Execution,
    Step,
    effective_steps,
)
from .rows import chunks, execution_row, step_row, text_value

MAX_STEPS_PER_EXECUTION = 10_000
MAX_LIVE_ROWS = 1_000
REMEMBERED_AGGREGATES = 4_096  # executions whose aggregate is kept between refreshes
FULL_PRINT_EVERY = 5.0  # seconds between full prints while saves change rowids
LIVE_STATUSES = tuple(sorted(LIVE_STORED))

Aggregated = tuple[Execution, tuple[Step, ...]]


class StepQueries:
    """Step reads, memoised aggregates and change-feed queries (see the module
    docstring); every method runs inside an open session and raises what ``rows``
    raises (``StoreUnavailable``, ``StoreDamaged``)."""

    paths: StorePaths
    writer_offset: timedelta
    _remembered: dict[tuple, tuple[str | None, Aggregated]]
    #: Seconds, monotonic: when the full print is due again (``time.monotonic``).
    clock = staticmethod(time.monotonic)
    #: Saves that keep the rowid were seen: the full print on every read.
    in_place_saves = False
    _full_due = 0.0
    _last_full: dict[str, tuple[str, str]]  # id -> (rowid print, full print) when last taken
    #: Execution ids whose prints this session took, and the prints (see _step_prints);
    #: emptied by StoreReader at each session's start and end.
    session_prints: tuple[set[str], dict[str, str]]

    # -- steps and aggregates ----------------------------------------------
    def steps_of(self, execution_ids: Iterable[str]) -> dict[str, list[Step]]:
        """Steps of these executions, by execution id (``steps(execution_id)`` is indexed)."""
        by_execution: dict[str, list[Step]] = {}
        for row in self._step_rows(list(execution_ids), MAX_STEPS_PER_EXECUTION):
            step = step_row(row)
            by_execution.setdefault(step.execution_id, []).append(step)
        return by_execution

    def executions_with_steps(self, ids: Iterable[str]) -> list[Aggregated]:
        """The executions with these ids (with step aggregates) and their step rows,
        in no set order: one read of each for the change feed. An execution whose rows
        did not change since the last read comes back as the same object, with the
        same tuple of steps (never to be changed in place)."""
        rows = []
        for chunk in chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            rows += self.rows(
                f"SELECT {self._select['executions']} FROM executions WHERE id IN ({marks})", chunk
            )
        return self._aggregated(rows)

    def _with_steps(self, rows: Sequence[tuple]) -> list[Execution]:
        """Executions from raw ``executions`` rows, with step aggregates (and log
        mtimes for live runs between steps), in the rows' order."""
        return [e for e, _steps in self._aggregated(rows)]

    def with_steps(self, execution: Execution, steps: list[Step]) -> Execution:
        """``execution`` with the aggregates of ``steps`` (its own step rows)."""
        return self._aggregate(execution, steps)

    def _aggregated(self, rows: Sequence[tuple]) -> list[Aggregated]:
        if not rows:
            return []
        prints = self._step_prints([text_value(r[0]) or "" for r in rows])
        remembered = self._remembered
        found: dict[int, Aggregated] = {}
        missing: dict[int, Execution] = {}
        for position, row in enumerate(rows):
            hit = remembered.get(row)
            if hit is not None and hit[0] == prints.get(hit[1][0].id):
                found[position] = hit[1]
            else:
                missing[position] = execution_row(row)
        if missing:
            steps = self.steps_of({e.id for e in missing.values()})
            if len(remembered) > REMEMBERED_AGGREGATES:
                remembered.clear()
            for position, execution in missing.items():
                own = tuple(steps.get(execution.id, ()))
                aggregated = (self._aggregate(execution, list(own)), own)
                found[position] = aggregated
                if not _reads_logs(aggregated[0], own):
                    remembered[rows[position]] = (prints.get(execution.id), aggregated)
        return [found[i] for i in range(len(rows))]

    def _step_prints(self, execution_ids: list[str]) -> dict[str, str]:
        """A print of each execution's step rows, made by SQLite: equal prints, equal
        rows (see the module docstring for the two kinds). Executions without steps
        are absent. Taken once per session: the change feed and the window read
        mostly the same runs within a few milliseconds, and a print a statement older
        than the rows beside it can only make a remembered aggregate miss, or be
        one refresh late, as any print is."""
        if "steps" not in self._has:
            return {}
        asked, known = self.session_prints
        missing = [i for i in execution_ids if i not in asked]
        if missing:
            known.update(self._fresh_prints(missing))
            asked.update(missing)
        return {i: known[i] for i in execution_ids if i in known}

    def _fresh_prints(self, execution_ids: list[str]) -> dict[str, str]:
        if self.in_place_saves:
            return self._prints(execution_ids, full=True)
        prints = self._prints(execution_ids, full=False)
        if self.clock() >= self._full_due:
            self._full_due = self.clock() + FULL_PRINT_EVERY
            full = self._prints(execution_ids, full=True)
            before = self._last_full
            if any(before.get(i, (None, None))[0] == prints.get(i)
                   and before[i][1] != full.get(i) for i in before.keys() & full.keys()):
                self.in_place_saves = True
                return full
            self._last_full = {i: (prints[i], full[i]) for i in full.keys() & prints.keys()}
        return prints

    def _prints(self, execution_ids: list[str], *, full: bool) -> dict[str, str]:
        if full:
            # The columns this schema has: rows.select_list writes "NULL AS c" for the others.
            columns = [c for c in self._select["steps"].split(", ")
                       if not c.startswith("NULL AS")]
            row_print = " || ".join(["rowid"] + [f"quote({c})" for c in columns])
            what = f"'full:' || group_concat({row_print}, char(31))"
        else:
            what = "count(*) || ':' || max(rowid)"
        prints: dict[str, str] = {}
        for chunk in chunks(execution_ids):
            marks = ",".join("?" * len(chunk))
            for execution_id, text in self.rows(
                    f"SELECT execution_id, {what} FROM steps "
                    f"WHERE execution_id IN ({marks}) GROUP BY execution_id", chunk):
                prints[text_value(execution_id) or ""] = text_value(text) or ""
        return prints

    def _step_rows(self, execution_ids: list[str], limit: int) -> list:
        if "steps" not in self._has or not execution_ids:
            return []
        rows = []
        for chunk in chunks(execution_ids):
            marks = ",".join("?" * len(chunk))
            rows += self.rows(
                f"SELECT {self._select['steps']} FROM steps WHERE execution_id IN ({marks}) "
                "LIMIT ?",
                [*chunk, limit * len(chunk)],
            )
        return rows

    def _aggregate(self, execution: Execution, steps: list[Step]) -> Execution:
        if not steps:
            return execution
        views = effective_steps(execution, steps)
        running = next((v.step for v in reversed(views) if v.status == "running"), None)
        changes = [t for t in (s.last_saved for s in steps) if t]
        if execution.stored_status not in FINAL_EXECUTION and running is None:
            changes += self._log_mtimes(steps)
        return replace(
            execution,
            steps_known=len(views),
            steps_finished=sum(v.status in FINISHED_STEP for v in views),
            steps_failed=sum(v.status == "failed" for v in views),
            running_step=running.name if running else None,
            running_metadata=running.metadata if running else None,
            last_step=views[-1].step.name,
            last_change=max(changes) if changes else None,
        )

    def _log_mtimes(self, steps: list[Step]) -> list[datetime]:
        # os.stat opens nothing, so it is safe beside live SQLite connections. File
        # times are absolute: shown in the writer's zone, like the rows.
        times = []
        for step in steps:
            try:
                mtime = os.stat(self.paths.step_log(step.execution_id, step.index, step.id)).st_mtime
                times.append(datetime.utcfromtimestamp(mtime) + self.writer_offset)
            except (OSError, OverflowError, ValueError):  # gone, or a time past year 9999
                continue
        return times

    # -- changes, for the change feed -----------------------------------------
    def max_rowids(self) -> tuple[int, int]:
        """(executions, steps): the largest rowids (the b-tree's last entry: cheap)."""
        executions = self.rows("SELECT max(rowid) FROM executions")[0][0]
        steps = 0
        if "steps" in self._has:
            steps = self.rows("SELECT max(rowid) FROM steps")[0][0] or 0
        return int(executions or 0), int(steps)

    def execution_count(self) -> int:
        """Rows in executions: ``count(*)`` walks the smallest index (56 ms on a million
        rows), so callers ask for it now and then, not on every refresh."""
        return int(self.rows("SELECT count(*) FROM executions")[0][0])

    def rowids_since(self, table: str, mark: int, limit: int = 10_000) -> list[str]:
        """Execution ids of ``table`` rows (executions or steps) whose rowid is above
        ``mark``: rows inserted or replaced since (INSERT OR REPLACE gives each save a
        new rowid; a plain UPDATE does not, and is found by re-reading live rows)."""
        if table not in self._has:
            return []
        column = "id" if table == "executions" else "execution_id"
        return [
            text_value(r[0]) or "" for r in self.rows(
                f"SELECT {column} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                [mark, limit])
        ]

    def newest_ids(self, limit: int) -> list[str]:
        """Ids of the newest ``limit`` executions by ``created_at`` (indexed)."""
        return [text_value(r[0]) or "" for r in self.rows(
            "SELECT id FROM executions ORDER BY created_at DESC, rowid DESC LIMIT ?", [limit])]

    def live_executions(self) -> list[Execution]:
        """Executions stored as pending or running, with step aggregates."""
        rows = self.rows(
            f"SELECT {self._select['executions']} FROM executions "
            f"WHERE status IN {LIVE_STATUSES} LIMIT {MAX_LIVE_ROWS}"
        )
        return self._with_steps(rows)

    def newest_timestamps(self, rows: int = 20) -> datetime | None:
        """The newest stored timestamp among the most recently saved rows (largest
        rowids): what the writer's clock said at about its last commit."""
        stamps = []
        for table, parse in (("executions", execution_row), ("steps", step_row)):
            if table in self._has:
                for row in self.rows(f"SELECT {self._select[table]} FROM {table} "
                                      "ORDER BY rowid DESC LIMIT ?", [rows]):
                    saved = parse(row)
                    stamps += [saved.created_at, saved.started_at, saved.completed_at]
        known = [t for t in stamps if t is not None]
        return max(known) if known else None

    def stored_status_counts(self) -> dict[str, int]:
        """Executions per stored status word, lowercased (a scan of the ``status``
        index, 53 ms on a million rows: the change feed keeps these up to date and
        recounts only when the row count disagrees)."""
        counts: dict[str, int] = {}
        for status, n in self.rows("SELECT status, count(*) FROM executions GROUP BY status"):
            word = (text_value(status) or "").lower()  # a writer may say "Completed"
            counts[word] = counts.get(word, 0) + n
        return counts


def _reads_logs(execution: Execution, steps: Sequence[Step]) -> bool:
    """Whether the aggregate of a run holds log-file times (live, between steps)."""
    return (bool(steps) and execution.stored_status not in FINAL_EXECUTION
            and execution.running_step is None)
