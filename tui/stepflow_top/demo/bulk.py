"""A bulk-built store for benchmarks and tests: :func:`populate`.

Rows are made from the scripts of :mod:`.catalogue` and written with the schema, pragmas
and ``INSERT OR REPLACE`` statements of :mod:`.store`, with ``executemany`` in large
transactions instead of one save at a time. Standard library only.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from .marker import claim_root
from .scripts import SCRIPTS, Script
from .store import (
    INSERT_ARTIFACT,
    INSERT_EXECUTION,
    INSERT_STEP,
    FastIso,
    iso_from_epoch,
    log_line,
    open_store,
    to_json,
    uuid4,
    write_log,
)

__all__ = ["populate"]


def populate(root: Path | str, *, executions: int, steps_per_execution: int = 4,
             seed: int = 0, running: int = 1) -> None:
    """Bulk-build a store for benchmarks and tests.

    Writes ``executions`` finished executions (about 90 % ``completed``, the rest
    ``failed`` at their last step) and then ``running`` in-flight ones, each with exactly
    ``steps_per_execution`` step rows, so ``steps`` gets
    ``(executions + running) * steps_per_execution`` rows. About one finished execution in
    three also gets an artifact row whose file did not exist (``file_size`` 0). Finished
    executions' ``created_at`` are spread evenly over the past 7 days (ending ten minutes
    ago), in insertion order, so the newest is last; in-flight ones follow, created in the
    last few minutes.

    An in-flight execution's row says ``pending`` (``started_at`` NULL, totals 0); its
    steps ``0 .. n-2`` are ``completed`` and step ``n-1`` is ``running`` (started a few
    seconds ago, with ``{"ESTIMATED_DURATION": "120"}`` metadata). Log files are written
    for in-flight executions only: every step has one, and step 0's includes an ANSI
    escape line, a Rich-markup-like line and a line with invalid UTF-8. Bulk rows have no
    log files.

    Uses the same schema and pragmas as :func:`run` (a store the demo created is appended
    to; any other raises :class:`.marker.ForeignStoreError`, see
    :func:`.marker.claim_root`) and
    ``executemany`` in large transactions: 100 000 executions with 400 000 steps take
    seconds. ``seed`` makes ids and contents reproducible. The connection is closed at the
    end (``-wal``/``-shm`` are checkpointed and removed).

    Raises ``ValueError`` when ``executions`` or ``running`` is negative or
    ``steps_per_execution`` is below 1, ``OSError``/``sqlite3.Error`` as :func:`open_store`.
    """
    if executions < 0 or running < 0:
        raise ValueError("executions and running must not be negative")
    if steps_per_execution < 1:
        raise ValueError("steps_per_execution must be at least 1")
    root = claim_root(root)
    rng = random.Random(seed)
    conn = open_store(root)
    try:
        now = time.time()
        span_end = now - 600.0
        span = 7 * 86400.0
        gap = span / max(executions, 1)
        chunk = 25000
        bulk = _Bulk(rng, steps_per_execution)
        for first in range(0, executions, chunk):
            for number in range(first, min(first + chunk, executions)):
                bulk.execution(span_end - span + number * gap)
            bulk.flush(conn)
        for number in range(running):
            _in_flight_execution(conn, root, rng, now, number, running, steps_per_execution)
    finally:
        conn.close()


def _step_names(script: Script, count: int) -> list[str]:
    names = [spec.name for spec in script.steps][:count]
    names.extend(f"step_{index}" for index in range(len(names), count))
    return names


def _bulk_command(script: Script) -> str:
    return script.command.replace("{sha}", "0c0ffee").replace("{date}", "2026-01-01")


class _Bulk:
    """Row factory for :func:`populate`: per-script constants computed once."""

    _ARTIFACT_NAMES = ("report.html", "output.csv", "model.pkl", "run.log")

    def __init__(self, rng: random.Random, n_steps: int) -> None:
        self.rng = rng
        self.n_steps = n_steps
        self.iso = FastIso()
        self.scripts = [
            (script, _bulk_command(script), to_json(list(script.tags)),
             _step_names(script, n_steps))
            for script in SCRIPTS
        ]
        self.exec_rows: list[tuple[object, ...]] = []
        self.step_rows: list[tuple[object, ...]] = []
        self.artifact_rows: list[tuple[object, ...]] = []

    def execution(self, created: float) -> None:
        """Append one finished execution (and its steps, maybe an artifact) to the rows."""
        rng, iso, n_steps = self.rng, self.iso, self.n_steps
        random_ = rng.random
        script, command, tags, names = self.scripts[rng.randrange(len(self.scripts))]
        execution_id = uuid4(rng)
        failed = random_() < 0.1
        exit_code = (1, 2, 137)[rng.randrange(3)] if failed else 0
        t = created + 0.1 + random_() * 0.1
        step_id = ""
        append_step = self.step_rows.append
        last = n_steps - 1
        for index, name in enumerate(names):
            step_id = uuid4(rng)
            begin = iso(t)
            t += 0.5 + random_() * 29.5
            if failed and index == last:
                append_step((step_id, execution_id, name, "", index, "failed", exit_code,
                             f"exit status {exit_code}", begin, begin, iso(t), None, 0, "{}"))
            else:
                append_step((step_id, execution_id, name, "", index, "completed", 0, None,
                             begin, begin, iso(t), None, 0, "{}"))
            t += 0.001
        self.exec_rows.append((
            execution_id, script.name, command, script.working_directory,
            "failed" if failed else "completed", exit_code,
            f"Step '{names[-1]}' failed: exit status {exit_code}" if failed else None,
            iso(created), iso(created + 0.0004), iso(t + 0.008), "{}",
            script.users[rng.randrange(len(script.users))], tags, n_steps,
            n_steps - 1 if failed else n_steps, last, "{}",
        ))
        if random_() < 1 / 3:
            name = self._ARTIFACT_NAMES[rng.randrange(len(self._ARTIFACT_NAMES))]
            self.artifact_rows.append((
                uuid4(rng), execution_id, step_id, name, "Bulk artifact",
                f"{script.working_directory}/{name}", "", 0, "", "other",
                iso(t - 0.002), "[]", 1, None, "{}",
            ))

    def flush(self, conn: sqlite3.Connection) -> None:
        """Insert the collected rows in one transaction and start over."""
        conn.executemany(INSERT_EXECUTION, self.exec_rows)
        conn.executemany(INSERT_STEP, self.step_rows)
        conn.executemany(INSERT_ARTIFACT, self.artifact_rows)
        conn.commit()
        self.exec_rows, self.step_rows, self.artifact_rows = [], [], []


def _in_flight_execution(conn: sqlite3.Connection, root: Path, rng: random.Random,
                         now: float, number: int, running: int, n_steps: int) -> None:
    script = SCRIPTS[number % len(SCRIPTS)]
    execution_id = uuid4(rng)
    # Created 5 to 1 minutes ago, in order; the running step started 2-5 s ago and the
    # earlier steps share the time in between.
    created = now - 300.0 + 240.0 * number / running
    running_start = now - 2.0 - 3.0 * rng.random()
    weights = [0.2 + rng.random() for _ in range(n_steps - 1)]
    available = running_start - created - 0.15 - 0.001 * (n_steps - 1)
    durations = [available * weight / sum(weights) for weight in weights]
    t = created
    conn.execute(INSERT_EXECUTION, (
        execution_id, script.name, _bulk_command(script), script.working_directory,
        "pending", None, None,
        iso_from_epoch(created), None, None, to_json({"CI": "false"}), script.users[0],
        to_json(list(script.tags)), 0, 0, -1, to_json({"trigger": "manual"}),
    ))
    conn.commit()
    t += 0.15
    for index, name in enumerate(_step_names(script, n_steps)):
        step_id = uuid4(rng)
        begin = iso_from_epoch(t)
        is_running = index == n_steps - 1
        texts: list[str | bytes] = [f"Starting {name}..."]
        if index == 0:
            texts += ["\x1b[1m\x1b[32mready\x1b[0m",
                      "[bold red]not markup[/] [@click=app.quit]x[/]",
                      b"latin-1 bytes: caf\xe9 \xff"]
        lines = [log_line(iso_from_epoch(t + 0.001 * (k + 1)), text)
                 for k, text in enumerate(texts)]
        if is_running:
            row = (step_id, execution_id, name, "", index, "running", None, None, begin, begin,
                   None, None, 0, to_json({"ESTIMATED_DURATION": "120"}))
        else:
            t += durations[index]
            lines.append(log_line(iso_from_epoch(t - 0.001), f"{name} done"))
            row = (step_id, execution_id, name, "", index, "completed", 0, None, begin, begin,
                   iso_from_epoch(t), None, 0, "{}")
            t += 0.001
        conn.execute(INSERT_STEP, row)
        conn.commit()
        write_log(root, execution_id, index, step_id, lines)
