"""Immutable snapshot models of a StepFlow store and the effective-status rule.

Timestamps in the store are ISO-8601 local time without a zone
(``2026-11-21T19:55:36.733484``, STEPFLOW_STORE.md); they are parsed to naive local
datetimes and compared with a naive local "now". JSON columns stay raw text here:
a view decides how to show text that is not JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

FINAL_EXECUTION = frozenset({"completed", "failed", "cancelled"})
FINISHED_STEP = frozenset({"completed", "failed", "skipped"})
DEFAULT_STALL_AFTER = 60.0


class Status(str, enum.Enum):
    """Effective status of an execution; the value is the word users see."""

    RUNNING = "running"
    STALLED = "stalled"
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def label(self) -> str:
        """Symbol and word, so status never depends on colour alone (UX.md #8)."""
        return f"{self.symbol} {self.value}"


_SYMBOLS = {
    Status.RUNNING: "●",
    Status.STALLED: "⏸",
    Status.PENDING: "…",
    Status.COMPLETED: "✓",
    Status.FAILED: "✗",
    Status.CANCELLED: "⊘",
    Status.UNKNOWN: "?",
}

STEP_SYMBOLS = {
    "running": "●",
    "pending": "…",
    "completed": "✓",
    "failed": "✗",
    "skipped": "↷",
}


def step_label(status: str) -> str:
    """``✓ completed`` style label for a stored step status (unknown words get ``?``)."""
    return f"{STEP_SYMBOLS.get(status, '?')} {status}"


def parse_timestamp(text: object) -> datetime | None:
    """Parse a stored timestamp; ``None`` for NULL or anything that is not ISO-8601.

    A zone, if a future service version writes one, is converted to local time and
    dropped so that all comparisons stay naive-local.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value = value.astimezone().replace(tzinfo=None)
    except (ValueError, OverflowError):  # e.g. year 9999 with a zone west of UTC
        return None
    return value


@dataclass(frozen=True, slots=True)
class Step:
    """One row of ``steps``; ``index`` is ``step_index`` (0-based order)."""

    id: str
    execution_id: str
    index: int
    name: str
    status: str
    description: str | None = None
    exit_code: int | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    estimated_duration: float | None = None
    metadata: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STEP

    @property
    def last_saved(self) -> datetime | None:
        """The newest timestamp on the row: the service saves at start and at end."""
        times = [t for t in (self.created_at, self.started_at, self.completed_at) if t]
        return max(times) if times else None

    def duration(self, now: datetime) -> float | None:
        """Seconds from start to completion, or to ``now`` while running."""
        if self.started_at is None:
            return None
        end = self.completed_at or (now if self.status == "running" else None)
        return None if end is None else max(0.0, (end - self.started_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Execution:
    """One row of ``executions`` plus what its steps say about it.

    ``stored_status`` is the row's word, which says ``pending`` for the whole run
    (STEPFLOW_STORE.md). The step aggregates (``steps_known``, ``steps_finished``,
    ``steps_failed``, ``running_step``, ``first_step_started``, ``last_change``) come
    from the step rows and log-file modification times and feed ``effective_status``.
    """

    id: str
    name: str
    stored_status: str
    command: str = ""
    working_directory: str | None = None
    exit_code: int | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    environment: str | None = None
    user_name: str | None = None
    tags: str | None = None
    total_steps: int = 0
    completed_steps: int = 0
    metadata: str | None = None
    created_at_text: str | None = None
    started_at_text: str | None = None
    completed_at_text: str | None = None
    steps_known: int = 0
    steps_finished: int = 0
    steps_failed: int = 0
    running_step: str | None = None
    last_step: str | None = None
    first_step_started: datetime | None = None
    last_change: datetime | None = None

    def effective_status(self, now: datetime, stall_after: float = DEFAULT_STALL_AFTER) -> Status:
        """The status a person should see (DESIGN.md "Effective status").

        Final stored statuses win; a running step means running; steps present and
        none running means running between steps, or stalled once nothing in the rows
        or log files changed for ``stall_after`` seconds; no steps means pending.
        """
        if self.stored_status in FINAL_EXECUTION:
            return Status(self.stored_status)
        if self.running_step is not None:
            return Status.RUNNING
        if self.steps_known:
            quiet = (now - self.last_change).total_seconds() if self.last_change else None
            return Status.STALLED if quiet is None or quiet > stall_after else Status.RUNNING
        if self.stored_status == "running":
            return Status.RUNNING
        if self.stored_status == "pending":
            return Status.PENDING
        return Status.UNKNOWN

    @property
    def current_step(self) -> str | None:
        """The running step's name, else the newest step's name."""
        return self.running_step or self.last_step

    @property
    def start(self) -> datetime | None:
        """When it started: the row's started_at, else (while the row says pending)
        its first step's start."""
        return self.started_at or self.first_step_started

    def duration(self, now: datetime) -> float | None:
        """Seconds from start to completion, or to ``now`` while it is not final."""
        if self.start is None:
            return None
        if self.stored_status in FINAL_EXECUTION:
            if self.completed_at is None:
                return None
            return max(0.0, (self.completed_at - self.start).total_seconds())
        return max(0.0, (now - self.start).total_seconds())

    @property
    def progress(self) -> tuple[int, int]:
        """(finished steps, known steps); a final row's own totals when it has no step rows."""
        if self.steps_known == 0 and self.stored_status in FINAL_EXECUTION:
            return (self.completed_steps or 0, self.total_steps or 0)
        return (self.steps_finished, self.steps_known)


@dataclass(frozen=True, slots=True)
class Artifact:
    """One row of ``artifacts``; ``exists`` says whether ``file_path`` is on disk now."""

    id: str
    execution_id: str
    name: str
    file_path: str
    step_id: str | None = None
    file_name: str | None = None
    file_size: int | None = 0
    mime_type: str | None = None
    artifact_type: str | None = None
    created_at: datetime | None = None
    exists: bool = False


@dataclass(frozen=True)
class Counts:
    """Row counts, and what executions per effective status are made of.

    ``stored`` counts executions per stored status; ``live`` holds the executions
    stored as pending or running (with step aggregates), whose effective status
    depends on the time: ``by_status(now)`` classifies them, so a run that turns
    stalled changes the counts without a new query. ``steps``/``artifacts`` are
    None when not counted.
    """

    executions: int = 0
    steps: int | None = None
    artifacts: int | None = None
    stored: dict[str, int] = field(default_factory=dict)
    live: tuple[Execution, ...] = ()

    def by_status(self, now: datetime, stall_after: float = DEFAULT_STALL_AFTER) -> dict[str, int]:
        """Executions per effective status word at ``now``."""
        result = {s: n for s, n in self.stored.items() if s in FINAL_EXECUTION}
        for execution in self.live:
            word = execution.effective_status(now, stall_after).value
            result[word] = result.get(word, 0) + 1
        unknown = sum(n for s, n in self.stored.items()
                      if s not in FINAL_EXECUTION and s not in ("pending", "running"))
        if unknown:
            result[Status.UNKNOWN.value] = result.get(Status.UNKNOWN.value, 0) + unknown
        return result


@dataclass(frozen=True)
class ExecutionDetail:
    """Everything the detail screen shows for one execution."""

    execution: Execution
    steps: tuple[Step, ...]
    artifacts: tuple[Artifact, ...]
    log_paths: dict[str, Path] = field(default_factory=dict)

    def first_failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.status == "failed"), None)
