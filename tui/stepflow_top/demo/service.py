"""The live writer: a single-threaded scheduler that plays planned runs of the demo's
scripts through :class:`.engine.Engine`, which saves rows and log files the way the real
StepFlow Monitor service does; and :func:`run`, its entry point.

What a run looks like on disk is the engine's business (see :mod:`.engine`); which runs
fail, end steps implicitly, are cancelled, time out, stall or start late is the plan's
(see :mod:`.catalogue`). The scheduler adds timing: at most two runs at a time, each
marker and output line at its planned moment, in virtual time so that the order of saves
does not depend on how late the loop ran.

When :func:`run` ends (its deadline, or ``stop``), the runs still in flight are saved as
the real service's shutdown (SIGTERM) saves them: ``running``, for ever. With ``hang_up``
set they are left as a killed service leaves them: ``pending``, with a ``running`` step.
Housekeeping (deleting old executions) is not simulated.

Standard library only.
"""

from __future__ import annotations

import heapq
import itertools
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Generator
from pathlib import Path

from .catalogue import Plan, PlannedStep, fill, plan_execution, step_lines
from .engine import Engine, RunState, StepState
from .marker import claim_root
from .scripts import SCRIPTS, ArtifactSpec
from .store import SAVE_STYLES, open_store

__all__ = ["run"]

_Process = Generator[float, None, None]


class _Service:
    """The simulated service: a virtual-time scheduler of generators over one engine.

    Each execution is a generator that makes the service's saves (through the engine) and
    yields the delay (seconds, already divided by ``speed``) until its next action. The
    scheduler runs on one thread, so every save is one transaction on one connection.
    """

    MAX_CONCURRENT = 2

    def __init__(self, engine: Engine, rng: random.Random, speed: float,
                 workdir: Path) -> None:
        self.engine = engine
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

    # -- one execution --------------------------------------------------------------

    def _artifact(self, run: RunState, step: StepState, artifact: ArtifactSpec,
                  rng: random.Random) -> None:
        produced: Path | None = None
        if rng.random() < 0.7:
            # The script really produced the file (otherwise the marker names a file that
            # does not exist, as in the fixture, and nothing is copied).
            produced = self.workdir / run.id / artifact.name
            produced.parent.mkdir(parents=True, exist_ok=True)
            produced.write_bytes(artifact.content)
        self.engine.artifact(run, artifact.name, artifact.description, step_id=step.id,
                             produced=produced)

    def execution(self, plan: Plan, rng: random.Random) -> _Process:
        """One script run, from its ``pending`` row to its final save."""
        script = plan.script
        try:
            run = self.engine.start(
                name=script.name, command=plan.command,
                working_directory=script.working_directory, environment=plan.environment,
                user=plan.user, tags=plan.tags, metadata=plan.metadata)
            yield plan.first_marker_delay / self.speed
            for planned in plan.steps:
                yield from self._step(run, planned, plan, rng)
                if planned.cut_after is not None:
                    if plan.ending == "cancel":
                        self.engine.cancel(run)
                    else:
                        self.engine.timeout(run)
                    self.finished += 1
                    return
            yield rng.uniform(0.003, 0.01) / self.speed  # the script exits
            self.engine.exit(run, plan.exit_code)
            self.finished += 1
        finally:
            self.active -= 1

    def _step(self, run: RunState, planned: PlannedStep, plan: Plan,
              rng: random.Random) -> _Process:
        """One step: its markers and lines; a cut step stops where the run is killed."""
        s = self.speed
        spec = planned.spec
        step = self.engine.step_start(run, planned.marker)
        for key, value in spec.meta:
            yield rng.uniform(0.002, 0.02) / s
            self.engine.meta(run, key, value)
        texts = step_lines(rng, planned, plan.values)
        interval = planned.duration / (len(texts) + 1)
        printed = texts if planned.cut_after is None else texts[:planned.cut_after]
        half = len(texts) // 2
        for position, text in enumerate(printed):
            yield interval / s
            self.engine.output(run, text)
            if (spec.progress_meta and not planned.stalls and position + 1 == half
                    and not planned.fails):
                self.engine.meta(run, "PROGRESS", "50")
        if planned.cut_after is not None:
            yield interval * (len(texts) + 1 - len(printed)) / s
            return
        if not planned.fails:
            for artifact in spec.artifacts:
                yield rng.uniform(0.001, 0.005) / s
                self._artifact(run, step, artifact, rng)
        yield interval / s
        if planned.fails and spec.failure is not None:
            self.engine.step_error(run, str(fill(spec.failure.message, plan.values)))
        elif not planned.implicit_end:
            self.engine.step_complete(run)
        yield 0.001 / s


def run(root: Path | str, *, seconds: float | None = None, speed: float = 1.0,
        seed: int | None = None, stop: threading.Event | None = None,
        save_style: str = "replace", hang_up: threading.Event | None = None) -> int:
    """Create ``root`` as a storage root and write to it like a live service.

    ``root`` must be new, empty or a root the demo created (see
    :func:`.marker.claim_root`); it is created (``mkdir -p``) and marked, with
    ``database/stepflow.db`` (see :func:`.store.open_store`) and ``executions/``; a store
    the demo created earlier is appended to. Executions from the built-in catalogue then
    run, at most two at a time; the first one's ``pending`` row is committed at once. At
    ``speed`` 1 an execution takes about 4-12 s (less when a step fails early, up to 8 s
    more when its first marker comes late, about 40 s more when a step stalls) and a new
    one starts every 1-10 s while fewer than two run; ``speed`` 2 runs everything twice as
    fast. ``save_style`` is ``"replace"`` (the real service's ``INSERT OR REPLACE``) or
    ``"update"`` (plain ``UPDATE`` statements that keep rowids).

    ``seconds`` is wall-clock seconds to run (``None``: until ``stop`` is set); ``stop``
    ends the run within one scheduler wait (it is waited on, never polled with
    ``time.sleep``). ``seed`` makes the sequence of scripts, ids, outcomes and log contents
    reproducible (timestamps are always the real local time).

    Returns the number of executions that reached their final save. Executions still in
    flight when the run ends are saved as the real service's shutdown saves them (status
    ``running``, for ever), or, when ``hang_up`` is set by then, left ``pending`` with a
    ``running`` step, as a killed service leaves them. The connection is closed at the
    end, so SQLite checkpoints and deletes ``-wal``/``-shm`` unless another connection is
    still open.

    Raises ``ValueError`` for a non-positive ``speed``, a negative ``seconds`` or an
    unknown ``save_style``, :class:`.marker.ForeignStoreError` when ``root`` holds a store
    the demo did not create, ``OSError`` when the storage root cannot be written and
    ``sqlite3.Error`` for a database SQLite cannot use.
    """
    if not speed > 0:
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    if seconds is not None and seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds!r}")
    if save_style not in SAVE_STYLES:
        raise ValueError(f"save_style must be one of {', '.join(SAVE_STYLES)}, "
                         f"got {save_style!r}")
    stop = stop if stop is not None else threading.Event()
    deadline = None if seconds is None else time.monotonic() + seconds
    root = claim_root(root)
    conn = open_store(root)
    workdir = Path(tempfile.mkdtemp(prefix="stepflow-demo-work-"))
    try:
        rng = random.Random(seed)
        engine = Engine(root, conn, style=save_style, rng=random.Random(rng.getrandbits(64)))
        service = _Service(engine, rng, speed, workdir)
        service.spawn(service.launcher(), time.monotonic())
        service.loop(deadline, stop)
        if hang_up is None or not hang_up.is_set():
            for in_flight in list(engine.runs.values()):
                engine.shutdown_save(in_flight)
        return service.finished
    finally:
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
