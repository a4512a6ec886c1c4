"""Rows as they come out of SQLite, turned into models.

A store written by another service version may lack a column (read as NULL through
``select_list``) or hold values of any type in any column (SQLite's flexible typing):
every converter accepts what it gets and turns what it cannot read into None, so one odd
row never fails a query (DESIGN.md promise 6).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Sequence

from .models import Artifact, Execution, Step, parse_timestamp

EXECUTION_COLUMNS = (
    "id", "name", "command", "working_directory", "status", "exit_code", "error_message",
    "created_at", "started_at", "completed_at", "environment", "user_name", "tags",
    "total_steps", "completed_steps", "metadata",
)
STEP_COLUMNS = (
    "id", "execution_id", "name", "description", "step_index", "status", "exit_code",
    "error_message", "created_at", "started_at", "completed_at", "estimated_duration",
    "metadata",
)
ARTIFACT_COLUMNS = (
    "id", "execution_id", "step_id", "name", "file_path", "file_name", "file_size",
    "mime_type", "artifact_type", "created_at",
)
SQL_VARIABLE_CHUNK = 500


def select_list(wanted: Sequence[str], present: set[str]) -> str:
    return ", ".join(c if c in present else f"NULL AS {c}" for c in wanted)


def chunks(items: Sequence, size: int = SQL_VARIABLE_CHUNK):
    """``items`` in lists of at most ``size``: one ``IN (...)`` query each, under
    SQLite's limit on bound variables."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def text_value(value: object) -> str | None:
    """``value`` as text (bytes decoded, invalid UTF-8 replaced); None for NULL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: object, default: int | None = None) -> int | None:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError, OverflowError):  # text, or a REAL such as 9e999 (inf)
        return default


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def execution_row(row: Sequence) -> Execution:
    (id_, name, command, workdir, status, exit_code, error, created, started, completed,
     environment, user, tags, total, done, metadata) = row
    return Execution(
        id=text_value(id_) or "",
        name=text_value(name) or "",
        stored_status=(text_value(status) or "").lower(),
        command=text_value(command) or "",
        working_directory=text_value(workdir),
        exit_code=_int(exit_code),
        error_message=text_value(error),
        created_at=parse_timestamp(created),
        started_at=parse_timestamp(started),
        completed_at=parse_timestamp(completed),
        environment=text_value(environment),
        user_name=text_value(user),
        tags=text_value(tags),
        total_steps=_int(total, 0),
        completed_steps=_int(done, 0),
        metadata=text_value(metadata),
        created_at_text=text_value(created),
        started_at_text=text_value(started),
        completed_at_text=text_value(completed),
    )


def step_row(row: Sequence) -> Step:
    (id_, execution_id, name, description, index, status, exit_code, error, created,
     started, completed, estimated, metadata) = row
    return Step(
        id=text_value(id_) or "",
        execution_id=text_value(execution_id) or "",
        index=_int(index, 0),
        name=text_value(name) or "",
        status=(text_value(status) or "").lower(),
        description=text_value(description),
        exit_code=_int(exit_code),
        error_message=text_value(error),
        created_at=parse_timestamp(created),
        started_at=parse_timestamp(started),
        completed_at=parse_timestamp(completed),
        estimated_duration=_float(estimated),
        metadata=text_value(metadata),
    )


def artifact_row(row: Sequence) -> Artifact:
    (id_, execution_id, step_id, name, file_path, file_name, size, mime, kind, created) = row
    path = text_value(file_path) or ""
    return Artifact(
        id=text_value(id_) or "",
        execution_id=text_value(execution_id) or "",
        step_id=text_value(step_id),
        name=text_value(name) or "",
        file_path=path,
        file_name=text_value(file_name),
        file_size=_int(size, 0),
        mime_type=text_value(mime),
        artifact_type=text_value(kind),
        created_at=parse_timestamp(created),
        exists=bool(path) and os.path.exists(path),
    )


def artifact_order(artifact: Artifact):
    return (artifact.created_at or datetime.min, artifact.name)


