"""How one run of a script from :mod:`.scripts` is planned.

:func:`plan_execution` draws everything random about one run up front, from the run's own
``random.Random``, so that a seed reproduces it; :mod:`.service` then plays the plan
through :mod:`.engine`, which saves rows as the real service does.

What a plan reproduces of real runs (``STEPFLOW_STORE.md``, "What the real service does
that a monitor must survive"):

* Some runs print nothing with a marker for a while: their row stays ``pending`` with no
  step rows for several seconds.
* Some steps end implicitly: the script never prints ``STEP_COMPLETE`` for them, so the
  next ``STEP_START`` or the script's exit ends them, and their row stays ``running``.
* Some runs fail: a step prints ``STEP_ERROR`` and the script exits with its own code; an
  optional step's failure lets the script carry on; a script may also crash (exit
  non-zero) with no ``STEP_ERROR`` at all.
* Some runs are cancelled or time out in the middle of a step.
* Now and then a step stalls for about 40 s (at ``speed`` 1) with no row or log change.

Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from .scripts import INVALID_UTF8_LINES, Script, StepSpec

__all__ = [
    "Plan",
    "PlannedStep",
    "fill",
    "plan_execution",
    "step_lines",
]

_TRIGGERS = ("cron", "manual", "api", "webhook")
_HOSTS = ("worker-1", "worker-2", "build-01")

#: Probabilities per execution (per step for an implicit end) of the rarer behaviours.
_LATE_FIRST_MARKER_PROBABILITY = 0.15
_LATE_FIRST_MARKER_SECONDS = (3.0, 8.0)
_IMPLICIT_END_PROBABILITY = 0.07
_CANCEL_PROBABILITY = 0.04
_TIMEOUT_PROBABILITY = 0.03
_CRASH_PROBABILITY = 0.04
_STALL_PROBABILITY = 0.06
_STALL_SECONDS = (38.0, 42.0)
_INVALID_UTF8_PROBABILITY = 0.04
_LONG_LINE_PROBABILITY = 0.05
#: What a script that crashes (exits non-zero without ``STEP_ERROR``) prints last.
_CRASHES = (
    (1, "RuntimeError: unexpected state, aborting"),
    (2, "error: unrecognized arguments: --fast"),
    (137, "Killed"),
)


def fill(text: str | bytes, values: dict[str, str]) -> str | bytes:
    """Replace ``{n}``-style placeholders (only known keys; other braces stay as they are)."""
    if isinstance(text, bytes):
        return text
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _random_values(rng: random.Random) -> dict[str, str]:
    return {
        "n": str(rng.randint(120, 98000)),
        "pct": f"{rng.uniform(40, 99):.1f}",
        "sec": f"{rng.uniform(0.4, 9.9):.2f}",
    }


def _long_line(rng: random.Random) -> str:
    records = [{"id": i, "sku": f"SKU-{rng.randint(10000, 99999)}",
                "qty": rng.randint(1, 40)} for i in range(80)]
    return "DEBUG payload=" + json.dumps(records)


# --------------------------------------------------------------------------- planning


@dataclass
class PlannedStep:
    """One step as it will run. ``duration`` is seconds at speed 1.

    ``fails``: the step prints its failure lines and ``STEP_ERROR``. ``implicit_end``: no
    ``STEP_COMPLETE``; the next ``STEP_START`` or the script's exit ends it. ``cut_after``:
    the run is cancelled or times out after this many of the step's lines.
    """

    spec: StepSpec
    duration: float
    fails: bool = False
    stalls: bool = False
    implicit_end: bool = False
    cut_after: int | None = None
    extra_lines: list[tuple[int, str | bytes]] = field(default_factory=list)

    @property
    def marker(self) -> str:
        """The text after ``STEP_START:`` (name and parameters)."""
        return self.spec.name + self.spec.params


@dataclass
class Plan:
    """One run of ``script``.

    ``first_marker_delay`` is seconds (at speed 1) from the ``pending`` row to the first
    ``STEP_START``. ``ending`` is ``"exit"`` (the script exits with ``exit_code``),
    ``"cancel"`` or ``"timeout"`` (the service kills it inside its last step).
    """

    script: Script
    user: str
    command: str
    environment: dict[str, str]
    tags: list[str]
    metadata: dict[str, object]
    steps: list[PlannedStep]
    values: dict[str, str]
    first_marker_delay: float
    ending: str = "exit"
    exit_code: int = 0


def _plan_steps(rng: random.Random, script: Script) -> tuple[list[PlannedStep], int]:
    """The steps up to a fatal failure, and the code the script exits with."""
    steps: list[PlannedStep] = []
    for spec in script.steps:
        planned = PlannedStep(spec, rng.uniform(*spec.seconds))
        planned.implicit_end = rng.random() < _IMPLICIT_END_PROBABILITY
        steps.append(planned)
        failure = spec.failure
        if failure is not None and rng.random() < failure.probability:
            planned.fails, planned.implicit_end = True, False
            if failure.fatal:
                return steps, failure.exit_code
    return steps, 0


def _plan_ending(rng: random.Random, plan: Plan) -> None:
    """Maybe turn the run into a cancel, a timeout or a crash (a non-zero exit with no
    ``STEP_ERROR``): the run then ends inside its last remaining step."""
    draw = rng.random()
    if draw < _CANCEL_PROBABILITY + _TIMEOUT_PROBABILITY:
        del plan.steps[rng.randrange(len(plan.steps)) + 1:]
        last = plan.steps[-1]
        last.fails = False
        last.cut_after = rng.randint(0, len(last.spec.lines))
        if draw < _CANCEL_PROBABILITY:
            plan.ending = "cancel"
        else:
            # The service's timeout ends a run that stopped making progress.
            plan.ending = "timeout"
            last.stalls = True
            last.duration = rng.uniform(*_STALL_SECONDS)
    elif draw < _CANCEL_PROBABILITY + _TIMEOUT_PROBABILITY + _CRASH_PROBABILITY:
        last = plan.steps[-1]
        if last.fails:
            return
        plan.exit_code, text = rng.choice(_CRASHES)
        last.implicit_end = True
        last.extra_lines.append((len(last.spec.lines), text))


def plan_execution(rng: random.Random, script: Script) -> Plan:
    """Decide everything random about one execution up front, from its own ``rng``."""
    today = _dt.date.today()
    values = {
        "date": (today - _dt.timedelta(days=1)).isoformat(),
        "week": f"{today.isocalendar()[0]}-W{today.isocalendar()[1]:02d}",
        "sha": f"{rng.getrandbits(28):07x}",
    }
    steps, exit_code = _plan_steps(rng, script)
    late = rng.random() < _LATE_FIRST_MARKER_PROBABILITY
    environment = {key: str(fill(value, values)) for key, value in script.environment.items()}
    plan = Plan(
        script=script,
        user=rng.choice(script.users),
        command=str(fill(script.command, values)),
        environment=environment,
        tags=list(script.tags),
        metadata={"trigger": rng.choice(_TRIGGERS), "host": rng.choice(_HOSTS),
                  "script_version": f"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}"},
        steps=steps,
        values=values,
        first_marker_delay=rng.uniform(*_LATE_FIRST_MARKER_SECONDS) if late
        else rng.uniform(0.08, 0.2),  # interpreter start-up before the first marker
        exit_code=exit_code,
    )
    if exit_code == 0:
        _plan_ending(rng, plan)
    if plan.ending == "exit" and rng.random() < _STALL_PROBABILITY:
        stalled = rng.choice(steps)
        stalled.stalls = True
        stalled.duration = rng.uniform(*_STALL_SECONDS)
    if rng.random() < _INVALID_UTF8_PROBABILITY:
        target = rng.choice(steps)
        target.extra_lines.append((rng.randint(0, 3), rng.choice(INVALID_UTF8_LINES)))
    if rng.random() < _LONG_LINE_PROBABILITY:
        target = rng.choice(steps)
        target.extra_lines.append((rng.randint(0, 3), _long_line(rng)))
    return plan


def step_lines(rng: random.Random, planned: PlannedStep,
               values: dict[str, str]) -> list[str | bytes]:
    """The lines the step prints (placeholders filled), in order."""
    spec = planned.spec
    source: Sequence[str | bytes]
    if planned.fails and spec.failure is not None:
        source = spec.failure.lines
    else:
        source = spec.lines
    lines = [fill(fill(line, values), _random_values(rng)) for line in source]
    for position, extra in planned.extra_lines:
        lines.insert(min(position, len(lines)), extra)
    return lines
