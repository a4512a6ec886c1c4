"""Immutable snapshot models of a StepFlow store and the effective-status rules.

Timestamps in the store are ISO-8601 in the *writer's* local time without a zone
(``2026-11-21T19:55:36.733484``, STEPFLOW_STORE.md); they are parsed to naive
datetimes and compared with a naive "now" in the same zone (``Judgement.now``: the
caller converts the clock to the writer's zone, see ``live.timezone``). JSON columns
stay raw text here: a view decides how to show text that is not JSON.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

from .stepmeta import StepMeta, parse_step_meta

FINAL_EXECUTION = frozenset({"completed", "failed", "cancelled"})
LIVE_STORED = frozenset({"pending", "running"})  # a SIGTERM'd service saves "running"
FINISHED_STEP = frozenset({"completed", "failed", "skipped"})
DEFAULT_STALL_AFTER = 60.0


class Status(str, enum.Enum):
    """Effective status of an execution; the value is the word users see.

    ``lost``: not final in its row, but no service has the store open, so nothing
    will ever finish it (the term Nomad uses for work whose node is gone)."""

    RUNNING = "running"
    STALLED = "stalled"
    LOST = "lost"
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
    Status.LOST: "◌",
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
    "lost": "◌",
}


@dataclass(frozen=True)
class Judgement:
    """What an effective status depends on besides the rows.

    ``now``: the current time as a naive datetime in the writer's zone (the zone the
    stored timestamps are in). ``stall_after``: seconds with no change after which a
    run between steps is stalled. ``writer_attached``: whether a service has the
    database open (True/False, from the fcntl locks), None when that cannot be known
    (then nothing is ever called lost). ``writer_started``: when the attached service
    process started (writer-local, None when unknown): a run with no sign of life since
    then belongs to a service that is gone, and the new one never re-saves it.
    """

    now: datetime
    stall_after: float = DEFAULT_STALL_AFTER
    writer_attached: bool | None = None
    writer_started: datetime | None = None


def step_label(status: str) -> str:
    """``✓ completed`` style label for a stored step status (unknown words get ``?``)."""
    return f"{STEP_SYMBOLS.get(status, '?')} {status}"


def local_offset(at: float | None = None) -> timedelta:
    """This process's UTC offset at unix time ``at`` (default now): the writer's own
    until its zone is known."""
    moment = datetime.now() if at is None else datetime.fromtimestamp(at)
    return moment.astimezone().utcoffset() or timedelta(0)


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
    def meta(self) -> StepMeta:
        """Progress, description and estimated duration from its ``META:`` markers."""
        return parse_step_meta(self.metadata, estimated_duration=self.estimated_duration,
                               description=self.description)

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
    ``steps_failed``, ``running_step``, ``running_metadata``, ``last_change``) come
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
    running_metadata: str | None = None  # the running step's metadata JSON, raw
    last_step: str | None = None
    last_change: datetime | None = None

    def effective_status(self, judgement: Judgement) -> Status:
        """The status a person should see (DESIGN.md "Effective status").

        Final stored statuses win. Otherwise: no service attached → lost; a running
        step → running; steps present and none running → running between steps, or
        stalled once nothing in the rows or log files changed for ``stall_after``
        seconds; no step rows yet → running since ``created_at`` (the service has no
        queue: STEPFLOW_STORE.md). A stored word the service never writes → unknown.
        """
        if self.stored_status in FINAL_EXECUTION:
            return Status(self.stored_status)
        if self.stored_status not in LIVE_STORED:
            return Status.UNKNOWN
        if judgement.writer_attached is False or self._predates(judgement.writer_started):
            return Status.LOST
        if self.running_step is not None or not self.steps_known:
            return Status.RUNNING
        last = self.last_change
        quiet = (judgement.now - last).total_seconds() if last else None
        if quiet is None or quiet > judgement.stall_after:
            return Status.STALLED
        return Status.RUNNING

    def inferred_from(self, judgement: Judgement) -> str | None:
        """How an effective status that differs from the stored word was inferred
        (one short phrase), None when the row says it."""
        status = self.effective_status(judgement)
        if status.value == self.stored_status:
            return None
        if status is Status.LOST:
            if judgement.writer_attached is False:
                return "no service has the database open"
            return "no change since the service restarted"
        if status is Status.STALLED:
            return f"no change for over {judgement.stall_after:g} s"
        if status is Status.RUNNING:
            if self.running_step is not None:
                return "a step is running"
            if not self.steps_known:
                return "no step yet; the service has no queue"
            return "between steps"
        return None

    @property
    def last_seen(self) -> datetime | None:
        """Its last sign of life: the newest of its own and its steps' saves and its
        log-file times (writer-local)."""
        times = [t for t in (self.created_at, self.started_at, self.last_change) if t]
        return max(times) if times else None

    def _predates(self, started: datetime | None) -> bool:
        seen = self.last_seen
        return started is not None and seen is not None and seen < started

    @property
    def current_step(self) -> str | None:
        """The running step's name, else the newest step's name."""
        return self.running_step or self.last_step

    @property
    def start(self) -> datetime | None:
        """When it started: the row's started_at, else (while the row says pending)
        its ``created_at``: the service has no queue, so creation is the start."""
        return self.started_at or self.created_at

    def end(self, judgement: Judgement) -> datetime | None:
        """When it ended: ``completed_at`` for a final row; for a lost run its last
        sign of life (it never ticks); None while it runs."""
        if self.stored_status in FINAL_EXECUTION:
            return self.completed_at
        if self.effective_status(judgement) is Status.LOST:
            return self.last_seen
        return None

    def duration(self, judgement: Judgement) -> float | None:
        """Seconds from start to end (see ``end``), or to ``judgement.now`` while it
        runs; None when a time is unknown."""
        if self.start is None:
            return None
        end = self.end(judgement)
        if end is None:
            if self.stored_status in FINAL_EXECUTION:
                return None
            end = judgement.now
        return max(0.0, (end - self.start).total_seconds())

    @property
    def ticking(self) -> bool:
        """True while its duration moves with the clock (not final)."""
        return self.stored_status not in FINAL_EXECUTION

    @property
    def progress(self) -> tuple[int, int]:
        """(finished steps, known steps); a final row's own totals when it has no step rows."""
        if self.steps_known == 0 and self.stored_status in FINAL_EXECUTION:
            return (self.completed_steps or 0, self.total_steps or 0)
        return (self.steps_finished, self.steps_known)


@dataclass(frozen=True, slots=True)
class StepView:
    """A step as a person should see it: ``status`` is the effective word, and
    ``inferred`` says how it was inferred when it differs from the row (None when the
    row says it); ``end`` is when it ended (None while it runs or when unknown)."""

    step: Step
    status: str
    inferred: str | None = None
    end: datetime | None = None

    @property
    def label(self) -> str:
        return step_label(self.status)

    def duration(self, now: datetime) -> float | None:
        """Seconds from the step's start to its end, or to ``now`` while it runs."""
        start = self.step.started_at
        if start is None:
            return None
        end = self.end or self.step.completed_at
        if end is None:
            if self.status != "running":
                return None
            end = now
        return max(0.0, (end - start).total_seconds())


def effective_steps(
    execution: Execution, steps: Sequence[Step], lost: bool = False
) -> tuple[StepView, ...]:
    """Effective status of each step of ``execution`` (``steps`` in any order; the
    result is by ``step_index``).

    The service never re-saves a step that ends implicitly (STEPFLOW_STORE.md): a
    ``STEP_START`` ends the previous step, and the script's exit, a cancel or a timeout
    ends the last one, each leaving its row ``running`` for ever. So a ``running`` row
    followed by a newer running step completed when that one started; the newest
    ``running`` row of a final execution took the execution's outcome (failed →
    failed, else completed) when it ended; the newest running row of a ``lost``
    execution (see ``Execution.effective_status``) is lost with it.
    """
    ordered = sorted(steps, key=lambda s: s.index)
    running = [s for s in ordered if s.status == "running"]
    newest = running[-1] if running else None
    final = execution.stored_status in FINAL_EXECUTION
    views = []
    for position, step in enumerate(ordered):
        if step.status != "running":
            views.append(StepView(step, step.status))
        elif step is not newest:
            later = next((s.started_at for s in ordered[position + 1:] if s.started_at), None)
            views.append(StepView(step, "completed", "ended when the next step started",
                                  later or execution.completed_at))
        elif final:
            outcome = "failed" if execution.stored_status != "completed" else "completed"
            views.append(StepView(step, outcome, "ended with its execution; the service "
                                  "never saves a step that ends implicitly",
                                  execution.completed_at))
        elif lost:
            views.append(StepView(step, "lost", "its service is gone", step.last_saved))
        else:
            views.append(StepView(step, "running"))
    return tuple(views)


@dataclass(frozen=True, slots=True)
class Artifact:
    """One row of ``artifacts``; ``exists`` says whether ``file_path`` is on disk now.
    ``stored_path`` is the path as the row holds it when ``file_path`` had to be
    resolved from it (:meth:`resolved`), else None."""

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
    stored_path: str | None = None

    def resolved(self, working_directory: str | None) -> Artifact:
        """This artifact with a relative ``file_path`` joined to the execution's
        ``working_directory`` and ``exists`` checked again there (``os.stat``, never an
        open). The service keeps the path the script printed when it copied nothing
        (STEPFLOW_STORE.md), and a script prints paths relative to its own working
        directory, not to ours. Returns ``self`` for an empty or absolute path, or
        when the working directory is unknown or itself relative."""
        base = working_directory or ""
        if not self.file_path or os.path.isabs(self.file_path) or not os.path.isabs(base):
            return self
        path = os.path.normpath(os.path.join(base, self.file_path))
        return replace(self, file_path=path, exists=os.path.exists(path),
                       stored_path=self.file_path)


@dataclass(frozen=True)
class Counts:
    """Row counts, and what executions per effective status are made of.

    ``stored`` counts executions per stored status; ``live`` holds the executions
    stored as pending or running (with step aggregates), whose effective status
    depends on the time and the writer: ``by_status(judgement)`` classifies them, so
    a run that turns stalled or lost changes the counts without a new query. ``steps``/``artifacts`` are
    None when not counted.
    """

    executions: int = 0
    steps: int | None = None
    artifacts: int | None = None
    stored: dict[str, int] = field(default_factory=dict)
    live: tuple[Execution, ...] = ()

    def by_status(self, judgement: Judgement) -> dict[str, int]:
        """Executions per effective status word."""
        result = {s: n for s, n in self.stored.items() if s in FINAL_EXECUTION}
        for execution in self.live:
            word = execution.effective_status(judgement).value
            result[word] = result.get(word, 0) + 1
        unknown = sum(n for s, n in self.stored.items()
                      if s not in FINAL_EXECUTION and s not in LIVE_STORED)
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

    def __post_init__(self) -> None:
        # Relative artifact paths point into the execution's working directory.
        where = self.execution.working_directory
        object.__setattr__(self, "artifacts", tuple(a.resolved(where) for a in self.artifacts))

    def step_views(self, judgement: Judgement) -> tuple[StepView, ...]:
        """``effective_steps`` of this execution."""
        lost = self.execution.effective_status(judgement) is Status.LOST
        return effective_steps(self.execution, self.steps, lost)

    def first_failed_step(self, judgement: Judgement) -> Step | None:
        """The first step whose effective status is failed (inferred ones included)."""
        return next((v.step for v in self.step_views(judgement) if v.status == "failed"), None)
