"""What the real StepFlow Monitor service keeps in memory for each run, and the saves it
makes on each marker, at a script's exit, on a cancel, a timeout, a shutdown and in
housekeeping.

Sources: ``STEPFLOW_STORE.md`` (what was observed running the service) and the service's
own code, which explains it (johnnynv/StepFlow_Monitor: ``app/core/execution_engine.py``,
``app/core/marker_parser.py``, ``app/core/persistence.py``, ``app/models/*.py``):

* The execution row is saved when the run is created (``pending``) and once more at the
  end. In memory the run is ``running`` from its start; only a shutdown (SIGTERM) saves
  that state (:meth:`Engine.shutdown_save`).
* ``STEP_START`` saves the new step ``running``. The previous step, if it had no
  ``STEP_COMPLETE``/``STEP_ERROR``, ends in memory only: its row stays ``running``.
  ``total_steps`` counts ``STEP_START`` markers, ``completed_steps`` only
  ``STEP_COMPLETE`` markers, ``current_step_index`` is the last started step.
* The step name is the marker text cut at ``[``, ``{`` or `` --``; parameters written
  ``[key=value]``, ``{key:value}`` or ``--key=value`` go into the step's ``metadata``;
  ``duration`` also into ``estimated_duration`` and ``stop_on_error`` into its column.
* Output lines (stripped, empty ones dropped) belong to the current step and reach disk
  only when that step's row is saved: the log file is then rewritten whole. Lines while
  no step is current are dropped. ``META:key:value`` sets ``metadata[key]`` of the current
  step and saves it (without a current step it goes to the execution's metadata).
* ``STEP_ERROR`` saves the step ``failed`` (exit code 1 unless told otherwise); on a
  ``stop_on_error`` step the execution gets ``Critical step failed: NAME - MESSAGE``.
* At the script's exit a step still current stays ``running`` on disk. A non-zero exit
  while a ``stop_on_error`` step is current stores ``failed``, exit code 1 and ``Critical
  step failed with exit code N: NAME``; otherwise the status follows the exit code (0:
  ``completed``, else ``failed``). A cancel is the exit code of SIGTERM, -15 (``cancelled``
  is never stored); a timeout stores exit code -1 and ``Execution timed out``.
* An ``ARTIFACT:`` row gets ``artifact_type`` ``other``; an existing file is copied to
  ``artifacts/<execution_id>/<artifact_id>_<file name>``, a missing one keeps its path
  with ``file_size`` 0 and empty ``file_name`` and ``mime_type``.
* Housekeeping deletes executions with their steps and artifacts in one transaction, then
  their folders.

Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import re
import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .store import Saver, log_line, now_iso, to_json, uuid4, write_log

__all__ = ["Engine", "RunState", "StepState", "parse_step_marker"]

_PARAMETER_PATTERNS = (
    re.compile(r"\[(\w+)=([^\]]+)\]"),
    re.compile(r"\{(\w+):([^}]+)\}"),
    re.compile(r"--(\w+)=(\S+)"),
)

# The service's own extension table (app/models/artifact.py), not mimetypes'.
_MIME_TYPES = {
    ".txt": "text/plain", ".log": "text/plain", ".html": "text/html", ".xml": "text/xml",
    ".json": "application/json", ".csv": "text/csv", ".pdf": "application/pdf",
    ".zip": "application/zip", ".tar": "application/x-tar", ".gz": "application/gzip",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
}


def _parameter_value(text: str) -> object:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.isdigit():
        return int(text)
    if "." in text and text.replace(".", "").isdigit():
        return float(text)
    return text


def parse_step_marker(content: str) -> tuple[str, dict[str, object]]:
    """Split the text after ``STEP_START:`` into the step name and its parameters.

    ``"Model Training [duration=300]"`` gives ``("Model Training", {"duration": 300})``.
    Values ``true``/``false`` become booleans, digits an int, digits with dots a float.
    """
    name = content
    for cut in ("[", "{", " --"):
        name = name.split(cut, 1)[0]
    params: dict[str, object] = {}
    for pattern in _PARAMETER_PATTERNS:
        for key, value in pattern.findall(content):
            params[key] = _parameter_value(value)
    return name.strip(), params


@dataclass
class StepState:
    """A step as the service holds it: its row and every output line received so far."""

    row: dict[str, object]
    lines: list[bytes] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.row["id"])


@dataclass
class RunState:
    """A run in flight: its execution row as held in memory, its steps, its current step."""

    row: dict[str, object]
    steps: list[StepState] = field(default_factory=list)
    current: StepState | None = None
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.row["id"])


class Engine:
    """The service's run bookkeeping and saves, on one connection.

    ``root`` is the storage root (log files and artifacts go below it); ``conn`` the
    service's open connection (see :func:`.store.open_store`); ``style`` the
    :class:`.store.Saver` style; ``rng`` draws the ids (seed it for reproducible ids).
    Every method that saves commits before it returns. Runs in flight are in :attr:`runs`
    (by execution id) until their final or shutdown save.
    """

    def __init__(self, root: Path | str, conn: sqlite3.Connection, *,
                 style: str = "replace", rng: random.Random | None = None) -> None:
        self.root = Path(root)
        self.conn = conn
        self.saver = Saver(conn, style)
        self.rng = rng if rng is not None else random.Random()
        self.runs: dict[str, RunState] = {}

    # -- lookups ----------------------------------------------------------------------

    def run(self, execution_id: str) -> RunState:
        """The run in flight with this id; ``KeyError`` when there is none."""
        try:
            return self.runs[execution_id]
        except KeyError:
            raise KeyError(f"no execution {execution_id} in flight") from None

    def step(self, step_id: str) -> tuple[RunState, StepState]:
        """The step with this id among the runs in flight; ``KeyError`` when there is none."""
        for run in self.runs.values():
            for step in run.steps:
                if step.id == step_id:
                    return run, step
        raise KeyError(f"no step {step_id} in a run in flight")

    # -- saves --------------------------------------------------------------------------

    def _save_step(self, step: StepState) -> None:
        self.saver.save("steps", step.row)
        write_log(self.root, str(step.row["execution_id"]), int(step.row["step_index"]),
                  step.id, step.lines)

    def start(self, *, name: str, command: str, working_directory: str = "/workspace",
              environment: dict[str, str] | None = None, user: str | None = None,
              tags: Iterable[str] = (), metadata: dict[str, object] | None = None) -> RunState:
        """Create a run: its row is saved ``pending`` (``started_at`` NULL, totals 0)."""
        metadata = dict(metadata or {})
        row: dict[str, object] = {
            "id": uuid4(self.rng), "name": name, "command": command,
            "working_directory": working_directory, "status": "pending", "exit_code": None,
            "error_message": None, "created_at": now_iso(), "started_at": None,
            "completed_at": None, "environment": to_json(environment or {}),
            "user_name": user, "tags": to_json(list(tags)), "total_steps": 0,
            "completed_steps": 0, "current_step_index": -1, "metadata": to_json(metadata),
        }
        run = RunState(row, metadata=metadata)
        self.saver.save("executions", row)
        # In memory the run starts at once (no queue); the row says so only at the end.
        row.update(status="running", started_at=now_iso())
        self.runs[run.id] = run
        return run

    def step_start(self, run: RunState, marker: str) -> StepState:
        """``STEP_START:marker``: save the new step ``running``; the previous one is not
        re-saved. Returns the new step (its index is ``row["step_index"]``)."""
        name, params = parse_step_marker(marker)
        created = now_iso()
        index = len(run.steps)
        step = StepState({
            "id": uuid4(self.rng), "execution_id": run.id, "name": name, "description": "",
            "step_index": index, "status": "running", "exit_code": None,
            "error_message": None, "created_at": created, "started_at": now_iso(),
            "completed_at": None, "estimated_duration": params.get("duration"),
            "stop_on_error": params.get("stop_on_error", False), "metadata": to_json(params),
        })
        run.row.update(total_steps=index + 1, current_step_index=index)
        run.steps.append(step)
        run.current = step
        self._save_step(step)
        return step

    def output(self, run: RunState, text: str | bytes) -> StepState | None:
        """A line the script printed: kept in memory for the current step (returned), or
        dropped (``None``) when it is empty or no step is current. Nothing is saved."""
        text = text.strip()
        if not text or run.current is None:
            return None
        run.current.lines.append(log_line(now_iso(), text))
        return run.current

    def meta(self, run: RunState, key: str, value: object) -> None:
        """``META:key:value``: set it in the current step's metadata and save the step;
        with no current step it goes to the execution's metadata, which is saved with the
        execution's next save."""
        step = run.current
        if step is None:
            run.metadata[key] = value
            run.row["metadata"] = to_json(run.metadata)
            return
        metadata = _metadata(step)
        metadata[key] = value
        step.row["metadata"] = to_json(metadata)
        self._save_step(step)

    def step_complete(self, run: RunState) -> StepState:
        """``STEP_COMPLETE`` for the current step: saved ``completed``, exit code 0.
        Raises ``ValueError`` when no step is current (the service ignores the marker)."""
        step = self._current(run, "STEP_COMPLETE")
        step.row.update(status="completed", exit_code=0, completed_at=now_iso())
        self._save_step(step)
        # Only STEP_COMPLETE saves a step 'completed', so this counts those markers.
        run.row["completed_steps"] = sum(s.row["status"] == "completed" for s in run.steps)
        run.current = None
        return step

    def step_error(self, run: RunState, message: str, exit_code: int = 1) -> StepState:
        """``STEP_ERROR:message`` for the current step: saved ``failed`` with the message and
        ``exit_code`` (the service always uses 1). On a ``stop_on_error`` step the execution
        is failed in memory with ``Critical step failed: NAME - MESSAGE``. Raises
        ``ValueError`` when no step is current."""
        step = self._current(run, "STEP_ERROR")
        step.row.update(status="failed", exit_code=exit_code, error_message=message,
                        completed_at=now_iso())
        self._save_step(step)
        if step.row["stop_on_error"]:
            run.row.update(status="failed", exit_code=1, completed_at=now_iso(),
                           error_message=f"Critical step failed: {step.row['name']} - {message}")
        run.current = None
        return step

    def artifact(self, run: RunState, path: str, description: str = "", *,
                 step_id: str | None = None, produced: Path | None = None) -> str:
        """``ARTIFACT:path:description``: insert an artifact row; returns its id.

        ``path`` is resolved against the run's working directory. ``produced`` is where
        the script left the file on this machine (``None``: it does not exist); an
        existing file is copied to ``artifacts/<execution_id>/``. ``step_id`` is the
        current step's id, or ``None`` for an artifact outside a step.
        """
        original = os.path.join(str(run.row["working_directory"]), path)
        artifact_id = uuid4(self.rng)
        row: dict[str, object] = {
            "id": artifact_id, "execution_id": run.id, "step_id": step_id,
            "name": os.path.basename(original), "description": description,
            "file_path": original, "file_name": "", "file_size": 0, "mime_type": "",
            "artifact_type": "other", "created_at": now_iso(), "tags": "[]",
            "is_public": True, "retention_days": None, "metadata": "{}",
        }
        if produced is not None and produced.exists():
            folder = self.root / "artifacts" / run.id
            folder.mkdir(parents=True, exist_ok=True)
            name = str(row["name"])
            target = folder / f"{artifact_id}_{name}"
            shutil.copy2(produced, target)
            row.update(file_path=str(target.resolve()), file_name=name,
                       file_size=produced.stat().st_size,
                       mime_type=_MIME_TYPES.get(os.path.splitext(name)[1].lower(),
                                                 "application/octet-stream"))
        self.saver.save("artifacts", row)
        return artifact_id

    def exit(self, run: RunState, exit_code: int) -> None:
        """The script exited with ``exit_code``: the execution's final save (see the
        module docstring for the status and message rules). A current step stays
        ``running`` on disk."""
        step = run.current
        if step is not None and exit_code != 0 and step.row["stop_on_error"]:
            run.row.update(status="failed", exit_code=1, completed_at=now_iso(),
                           error_message=f"Critical step failed with exit code {exit_code}: "
                                         f"{step.row['name']}")
        else:
            run.row.update(status="completed" if exit_code == 0 else "failed",
                           exit_code=exit_code, completed_at=now_iso())
        self.saver.save("executions", run.row)
        del self.runs[run.id]

    def cancel(self, run: RunState) -> None:
        """A cancel: the service SIGTERMs the script, which exits with -15."""
        self.exit(run, -15)

    def timeout(self, run: RunState) -> None:
        """A timeout: ``Execution timed out``, exit code -1."""
        run.row["error_message"] = "Execution timed out"
        self.exit(run, -1)

    def shutdown_save(self, run: RunState) -> None:
        """The service is stopped (SIGTERM) while the run is in flight: its row is saved as
        held in memory, normally ``running`` with ``started_at`` set, and never again."""
        self.saver.save("executions", run.row)
        del self.runs[run.id]

    # -- housekeeping -------------------------------------------------------------------

    def delete(self, execution_ids: Iterable[str]) -> list[str]:
        """Delete executions with their steps, artifacts and folders, as housekeeping does
        (one transaction, then the folders). Returns the ids that had an execution row."""
        ids = list(dict.fromkeys(execution_ids))
        found: list[str] = []
        for first in range(0, len(ids), 500):  # SQLite's default limit on parameters
            chunk = ids[first:first + 500]
            marks = ",".join("?" * len(chunk))
            found += [i for (i,) in self.conn.execute(
                f"SELECT id FROM executions WHERE id IN ({marks})", chunk).fetchall()]
            self.conn.execute(f"DELETE FROM artifacts WHERE execution_id IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM steps WHERE execution_id IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM executions WHERE id IN ({marks})", chunk)
        self.conn.commit()
        for execution_id in ids:
            for folder in ("executions", "artifacts"):
                shutil.rmtree(self.root / folder / execution_id, ignore_errors=True)
        return found

    def housekeep(self, days: float) -> list[str]:
        """Delete every execution created more than ``days`` days ago (local time, as the
        service compares ``created_at``). Returns the deleted ids."""
        cutoff = (_dt.datetime.now() - _dt.timedelta(days=days)).isoformat()
        ids = [i for (i,) in self.conn.execute(
            "SELECT id FROM executions WHERE created_at < ?", (cutoff,)).fetchall()]
        return self.delete(ids)

    def _current(self, run: RunState, marker: str) -> StepState:
        if run.current is None:
            raise ValueError(f"{marker} with no current step in execution {run.id}")
        return run.current


def _metadata(step: StepState) -> dict[str, object]:
    return dict(json.loads(str(step.row["metadata"])))
