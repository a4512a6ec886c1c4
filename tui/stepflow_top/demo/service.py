"""The live writer: a single-threaded scheduler that saves rows and log files the way the
real StepFlow Monitor service does while scripts run, and :func:`run`, its entry point.

What is reproduced from the real service (see ``STEPFLOW_STORE.md`` and the
``stepflow-midrun`` fixture), beyond what :mod:`.store` describes:

* The execution row is saved only twice: at creation (``pending``, ``started_at`` NULL,
  totals 0, ``current_step_index`` -1) and when the script ends. While it runs the row
  still says ``pending``; only its step rows show progress.
* A step row is saved when the step starts (``running``), on each ``META:`` marker and when
  the step completes or fails. Each save rewrites the step's log file whole (truncate,
  then write) with every line received so far; lines received between two saves exist only
  in memory. As in the fixture, a save with no lines yet writes no file, so a running
  step's log is usually absent or behind.
* ``META:KEY:value`` markers land in the step's ``metadata`` JSON as ``{"KEY": "value"}``
  (a string); like the real service, the ``estimated_duration`` *column* stays NULL.
* ``ARTIFACT:`` markers insert an artifact row. When the produced file exists it is copied
  to the artifacts folder (``file_path`` is the absolute path of the copy, ``file_size`` its
  size); when it does not, ``file_path`` keeps the original path, ``file_name`` and
  ``mime_type`` are empty, ``artifact_type`` is ``other`` and ``file_size`` 0.

What the scripts print, and how they fail or stall, comes from :mod:`.catalogue`.

Housekeeping (deleting old executions) is not simulated. Stopping :func:`run` does not
finish the executions in flight: like a service that was stopped, it leaves their rows
``pending`` and their current step ``running``.

Standard library only.
"""

from __future__ import annotations

import heapq
import itertools
import mimetypes
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path

from .catalogue import SCRIPTS, ArtifactSpec, Plan, fill, plan_execution, step_lines
from .store import (
    ARTIFACT_COLUMNS,
    EXECUTION_COLUMNS,
    INSERT_ARTIFACT,
    INSERT_EXECUTION,
    INSERT_STEP,
    STEP_COLUMNS,
    log_line,
    now_iso,
    open_store,
    to_json,
    uuid4,
    write_log,
)

__all__ = ["run"]


def _mime_type(file_name: str) -> str:
    if file_name.endswith(".log"):
        return "text/plain"
    return mimetypes.guess_type(file_name)[0] or "application/octet-stream"


_Process = Generator[float, None, None]


class _Service:
    """The simulated service: one connection, a virtual-time scheduler of generators.

    Each execution is a generator that performs the service's saves and yields the delay
    (seconds, already divided by ``speed``) until its next action. The scheduler runs on
    one thread, so every save is a plain ``INSERT OR REPLACE`` + commit on one connection.
    """

    MAX_CONCURRENT = 2

    def __init__(self, root: Path, conn: sqlite3.Connection, rng: random.Random,
                 speed: float, workdir: Path) -> None:
        self.root = root
        self.conn = conn
        self.rng = rng
        self.speed = speed
        self.workdir = workdir
        self.active = 0
        self.finished = 0
        self._heap: list[tuple[float, int, _Process]] = []
        self._seq = itertools.count()
        self._vnow = 0.0

    # -- scheduling ---------------------------------------------------------------

    def spawn(self, process: _Process, at: float) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), process))

    def loop(self, deadline: float | None, stop: threading.Event) -> None:
        """Run scheduled actions until ``deadline`` (monotonic seconds) or ``stop``."""
        while self._heap and not stop.is_set():
            at = self._heap[0][0]
            if deadline is not None and at > deadline:
                stop.wait(max(0.0, deadline - time.monotonic()))
                return
            delay = at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            _, _, process = heapq.heappop(self._heap)
            self._vnow = at
            try:
                step = next(process)
            except StopIteration:
                continue
            # Virtual time: the next action is due relative to when this one was due, so
            # the order of actions does not depend on how late the loop ran.
            self.spawn(process, at + step)

    def launcher(self) -> _Process:
        """Start executions: the first at once, then one every few seconds, at most two."""
        while True:
            if self.active < self.MAX_CONCURRENT:
                script = self.rng.choice(SCRIPTS)
                exec_rng = random.Random(self.rng.getrandbits(64))
                self.active += 1
                self.spawn(self.execution(plan_execution(exec_rng, script), exec_rng),
                           self._vnow)
                yield self.rng.uniform(1.0, 10.0) / self.speed
            else:
                yield 0.25 / self.speed

    # -- saves ----------------------------------------------------------------------

    def _save(self, sql: str, row: dict[str, object], columns: Sequence[str]) -> None:
        self.conn.execute(sql, tuple(row[c] for c in columns))
        self.conn.commit()

    def _save_step(self, row: dict[str, object], index: int,
                   lines: Sequence[bytes]) -> None:
        """Save a step row, then rewrite its log file with ``lines`` (if any)."""
        self._save(INSERT_STEP, row, STEP_COLUMNS)
        write_log(self.root, str(row["execution_id"]), index, str(row["id"]), lines)

    def _save_artifact(self, execution_id: str, step_id: str, artifact: ArtifactSpec,
                       plan: Plan, rng: random.Random) -> None:
        artifact_id = uuid4(rng)
        row: dict[str, object] = {
            "id": artifact_id, "execution_id": execution_id, "step_id": step_id,
            "name": artifact.name, "description": artifact.description,
            "created_at": now_iso(), "tags": "[]", "is_public": 1,
            "retention_days": rng.choice((None, None, 30, 90)), "metadata": "{}",
        }
        if rng.random() < 0.7:
            # The script really produced the file: the service copies it.
            source_dir = self.workdir / execution_id
            source_dir.mkdir(parents=True, exist_ok=True)
            source = source_dir / artifact.name
            source.write_bytes(artifact.content)
            target_dir = self.root / "artifacts" / execution_id
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / f"{artifact_id}_{artifact.name}"
            shutil.copyfile(source, target)
            row.update(
                file_path=str(target.resolve()), file_name=artifact.name,
                file_size=target.stat().st_size,
                mime_type=_mime_type(artifact.name),
                artifact_type=artifact.kind,
            )
        else:
            # The file the marker names does not exist: nothing is copied (as in the fixture).
            row.update(
                file_path=f"{plan.script.working_directory}/{artifact.name}", file_name="",
                file_size=0, mime_type="", artifact_type="other",
            )
        self._save(INSERT_ARTIFACT, row, ARTIFACT_COLUMNS)

    # -- one execution --------------------------------------------------------------

    def execution(self, plan: Plan, rng: random.Random) -> _Process:
        """One script run, from its ``pending`` row to its final save."""
        s = self.speed
        script = plan.script
        execution_id = uuid4(rng)
        row: dict[str, object] = {
            "id": execution_id, "name": script.name, "command": plan.command,
            "working_directory": script.working_directory, "status": "pending",
            "exit_code": None, "error_message": None, "created_at": now_iso(),
            "started_at": None, "completed_at": None,
            "environment": to_json(plan.environment), "user_name": plan.user,
            "tags": to_json(plan.tags), "total_steps": 0, "completed_steps": 0,
            "current_step_index": -1, "metadata": to_json(plan.metadata),
        }
        try:
            self._save(INSERT_EXECUTION, row, EXECUTION_COLUMNS)
            started_at = now_iso()  # known to the service now, written only at the end
            yield rng.uniform(0.08, 0.2) / s  # interpreter start-up before the first marker

            completed = 0
            failure: tuple[int, str, str] | None = None
            for index, planned in enumerate(plan.steps):
                spec = planned.spec
                metadata: dict[str, object] = {}
                if script.stop_on_error_metadata:
                    metadata["stop_on_error"] = spec.stop_on_error
                step: dict[str, object] = {
                    "id": uuid4(rng), "execution_id": execution_id, "name": spec.name,
                    "description": "", "step_index": index, "status": "running",
                    "exit_code": None, "error_message": None, "created_at": now_iso(),
                    "started_at": now_iso(), "completed_at": None, "estimated_duration": None,
                    "stop_on_error": int(spec.stop_on_error), "metadata": to_json(metadata),
                }
                lines: list[bytes] = []
                self._save_step(step, index, lines)
                for key, value in spec.meta:
                    yield rng.uniform(0.002, 0.02) / s
                    metadata[key] = value
                    step["metadata"] = to_json(metadata)
                    self._save_step(step, index, lines)

                texts = step_lines(rng, planned, plan.values)
                interval = planned.duration / (len(texts) + 1)
                half = len(texts) // 2
                for position, text in enumerate(texts):
                    yield interval / s
                    lines.append(log_line(now_iso(), text))
                    if (spec.progress_meta and not planned.stalls and position + 1 == half
                            and not planned.fails):
                        metadata["PROGRESS"] = "50"
                        step["metadata"] = to_json(metadata)
                        self._save_step(step, index, lines)
                if not planned.fails:
                    for artifact in spec.artifacts:
                        yield rng.uniform(0.001, 0.005) / s
                        self._save_artifact(execution_id, str(step["id"]), artifact, plan, rng)
                yield interval / s

                row["current_step_index"] = index
                row["total_steps"] = index + 1
                step["completed_at"] = now_iso()
                if planned.fails and spec.failure is not None:
                    message = str(fill(spec.failure.message, plan.values))
                    step.update(status="failed", exit_code=spec.failure.exit_code,
                                error_message=message)
                    self._save_step(step, index, lines)
                    failure = (spec.failure.exit_code, spec.name, message)
                    break
                step.update(status="completed", exit_code=0)
                self._save_step(step, index, lines)
                completed += 1
                row["completed_steps"] = completed
                yield 0.001 / s

            yield rng.uniform(0.003, 0.01) / s  # the script exits
            row.update(started_at=started_at, completed_at=now_iso())
            if failure is None:
                row.update(status="completed", exit_code=0, error_message=None)
            else:
                row.update(status="failed", exit_code=failure[0],
                           error_message=f"Step '{failure[1]}' failed: {failure[2]}")
            self._save(INSERT_EXECUTION, row, EXECUTION_COLUMNS)
            self.finished += 1
        finally:
            self.active -= 1


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise ValueError(f"speed must be a positive number, got {speed!r}")


def run(root: Path | str, *, seconds: float | None = None, speed: float = 1.0,
        seed: int | None = None, stop: threading.Event | None = None) -> int:
    """Create ``root`` as a storage root and write to it like a live service.

    ``root`` is created (``mkdir -p``) with ``database/stepflow.db`` (see
    :func:`open_store`) and ``executions/``; an existing store is appended to. Executions
    from the built-in catalogue then run, at most two at a time; the first one's
    ``pending`` row is committed at once. At ``speed`` 1 an execution takes about 4-12 s
    (less when a step fails early, about 40 s more when a step stalls) and a new one starts
    every 1-10 s while fewer than two run; ``speed`` 2 runs everything twice as fast.

    ``seconds`` is wall-clock seconds to run (``None``: until ``stop`` is set); ``stop``
    ends the run within one scheduler wait (it is waited on, never polled with
    ``time.sleep``). ``seed`` makes the sequence of scripts, ids, outcomes and log contents
    reproducible (timestamps are always the real local time).

    Returns the number of executions that reached their final save. Executions still
    running when the run ends are left as a stopped service leaves them (row ``pending``,
    current step ``running``). The connection is closed at the end, so SQLite checkpoints
    and deletes ``-wal``/``-shm`` unless another connection is still open.

    Raises ``ValueError`` for a non-positive ``speed`` or a negative ``seconds``,
    ``OSError`` when the storage root cannot be written and ``sqlite3.Error`` for a
    database SQLite cannot use.
    """
    _check_speed(speed)
    if seconds is not None and seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds!r}")
    stop = stop if stop is not None else threading.Event()
    start = time.monotonic()
    deadline = None if seconds is None else start + seconds
    root = Path(root)
    conn = open_store(root)
    workdir = Path(tempfile.mkdtemp(prefix="stepflow-demo-work-"))
    try:
        service = _Service(root, conn, random.Random(seed), speed, workdir)
        service.spawn(service.launcher(), time.monotonic())
        service.loop(deadline, stop)
        return service.finished
    finally:
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
