"""The storage root as the real StepFlow Monitor service writes it: layout, schema,
connection, saves, timestamps, ids and log files.

What is reproduced from the real service (see ``STEPFLOW_STORE.md`` and the
``stepflow-midrun`` fixture):

* Layout: ``<root>/database/stepflow.db``,
  ``<root>/executions/<execution_id>/step_<step_index>_<step_id>.log`` and
  ``<root>/artifacts/<execution_id>/<artifact_id>_<file name>``. The ``executions/`` folder
  exists from start-up; an execution's folder appears with its first log file; the
  ``artifacts/`` folder appears with the first copied artifact.
* The schema, byte for byte as the service creates it (:data:`SCHEMA`).
* One long-lived connection with the service's pragmas (:data:`STARTUP_PRAGMAS`), then
  ``PRAGMA wal_checkpoint(TRUNCATE)``.
* Every save is one ``INSERT OR REPLACE`` followed by a commit, so a replaced row gets a
  new rowid each time (:class:`Saver` with style ``replace``). Style ``update`` saves
  with a plain ``UPDATE`` once the row exists, keeping its rowid, as another service
  version or a repair script would.
* Timestamps are local time, ISO-8601 without zone, with microseconds
  (``2026-11-21T19:55:36.733484``), in rows and at the start of every log line.

Used by :mod:`.engine` (the live service's saves) and :mod:`.bulk`
(:func:`~.bulk.populate`).
Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ARTIFACT_COLUMNS",
    "DB_RELPATH",
    "EXECUTION_COLUMNS",
    "INSERT_ARTIFACT",
    "INSERT_EXECUTION",
    "INSERT_STEP",
    "SAVE_STYLES",
    "SCHEMA",
    "STARTUP_PRAGMAS",
    "STEP_COLUMNS",
    "TABLE_COLUMNS",
    "FastIso",
    "Saver",
    "iso_from_epoch",
    "log_line",
    "now_iso",
    "open_store",
    "to_json",
    "uuid4",
    "write_log",
]

#: Where the database lives inside a storage root.
DB_RELPATH = Path("database") / "stepflow.db"

#: The real service's DDL, verbatim (the text SQLite keeps in ``sqlite_master.sql``).
#: SQLite drops ``IF NOT EXISTS`` from the stored text, so re-running it on an existing
#: store is harmless and the stored text still matches the service's byte for byte.
SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS executions (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                command TEXT NOT NULL,
                working_directory TEXT,
                status TEXT NOT NULL,
                exit_code INTEGER,
                error_message TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                completed_at TEXT,
                environment TEXT,
                user_name TEXT,
                tags TEXT,
                total_steps INTEGER DEFAULT 0,
                completed_steps INTEGER DEFAULT 0,
                current_step_index INTEGER DEFAULT -1,
                metadata TEXT
            )""",
    """CREATE TABLE IF NOT EXISTS steps (
                id TEXT PRIMARY KEY,
                execution_id TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                step_index INTEGER NOT NULL,
                status TEXT NOT NULL,
                exit_code INTEGER,
                error_message TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                completed_at TEXT,
                estimated_duration REAL,
                stop_on_error BOOLEAN DEFAULT 0,
                metadata TEXT,
                FOREIGN KEY (execution_id) REFERENCES executions (id)
            )""",
    """CREATE TABLE IF NOT EXISTS artifacts (
                id TEXT PRIMARY KEY,
                execution_id TEXT NOT NULL,
                step_id TEXT,
                name TEXT NOT NULL,
                description TEXT,
                file_path TEXT NOT NULL,
                file_name TEXT,
                file_size INTEGER DEFAULT 0,
                mime_type TEXT,
                artifact_type TEXT,
                created_at TEXT NOT NULL,
                tags TEXT,
                is_public BOOLEAN DEFAULT 1,
                retention_days INTEGER,
                metadata TEXT,
                FOREIGN KEY (execution_id) REFERENCES executions (id),
                FOREIGN KEY (step_id) REFERENCES steps (id)
            )""",
    "CREATE INDEX IF NOT EXISTS idx_executions_status ON executions (status)",
    "CREATE INDEX IF NOT EXISTS idx_executions_created_at ON executions (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_executions_user ON executions (user_name)",
    "CREATE INDEX IF NOT EXISTS idx_steps_execution_id ON steps (execution_id)",
    "CREATE INDEX IF NOT EXISTS idx_steps_status ON steps (status)",
    "CREATE INDEX IF NOT EXISTS idx_artifacts_execution_id ON artifacts (execution_id)",
    "CREATE INDEX IF NOT EXISTS idx_artifacts_step_id ON artifacts (step_id)",
)

#: The service's start-up pragmas, in order; ``wal_checkpoint(TRUNCATE)`` follows them.
STARTUP_PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=10000",
    "PRAGMA temp_store=memory",
    "PRAGMA mmap_size=268435456",
    "PRAGMA wal_autocheckpoint=1000",
)

EXECUTION_COLUMNS = (
    "id", "name", "command", "working_directory", "status", "exit_code", "error_message",
    "created_at", "started_at", "completed_at", "environment", "user_name", "tags",
    "total_steps", "completed_steps", "current_step_index", "metadata",
)
STEP_COLUMNS = (
    "id", "execution_id", "name", "description", "step_index", "status", "exit_code",
    "error_message", "created_at", "started_at", "completed_at", "estimated_duration",
    "stop_on_error", "metadata",
)
ARTIFACT_COLUMNS = (
    "id", "execution_id", "step_id", "name", "description", "file_path", "file_name",
    "file_size", "mime_type", "artifact_type", "created_at", "tags", "is_public",
    "retention_days", "metadata",
)


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )


INSERT_EXECUTION = _insert_sql("executions", EXECUTION_COLUMNS)
INSERT_STEP = _insert_sql("steps", STEP_COLUMNS)
INSERT_ARTIFACT = _insert_sql("artifacts", ARTIFACT_COLUMNS)

#: The columns of each table, in the order the service lists them in its saves.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "executions": EXECUTION_COLUMNS, "steps": STEP_COLUMNS, "artifacts": ARTIFACT_COLUMNS,
}
#: How rows are saved: ``replace`` (the real service) or ``update`` (rowid kept).
SAVE_STYLES = ("replace", "update")


class Saver:
    """Saves whole rows on ``conn``, one transaction (one commit) per save.

    ``style`` is ``"replace"``: ``INSERT OR REPLACE``, as the real service does (SQLite
    deletes and re-inserts the row, so it gets a new rowid each save); or ``"update"``: a
    plain ``UPDATE ... WHERE id = ?`` that keeps the rowid, with an ``INSERT`` the first
    time a row is saved. The style may be changed between saves (attribute ``style``).
    Raises ``ValueError`` for an unknown style.
    """

    def __init__(self, conn: sqlite3.Connection, style: str = "replace") -> None:
        self.conn = conn
        self.style = style

    @property
    def style(self) -> str:
        return self._style

    @style.setter
    def style(self, value: str) -> None:
        if value not in SAVE_STYLES:
            raise ValueError(f"save style must be one of {', '.join(SAVE_STYLES)}, not {value!r}")
        self._style = value

    def save(self, table: str, row: dict[str, object]) -> None:
        """Save ``row`` (a value for every column of ``table``) and commit.

        Raises ``KeyError`` for an unknown table or a missing column, ``sqlite3.Error`` when
        SQLite refuses the write.
        """
        columns = TABLE_COLUMNS[table]
        values = tuple(row[c] for c in columns)
        if self._style == "replace":
            self.conn.execute(_REPLACE[table], values)
        else:
            updated = self.conn.execute(_UPDATE[table], values[1:] + values[:1]).rowcount
            if updated == 0:
                self.conn.execute(_INSERT[table], values)
        self.conn.commit()


_REPLACE = {"executions": INSERT_EXECUTION, "steps": INSERT_STEP, "artifacts": INSERT_ARTIFACT}
_INSERT = {table: sql.replace("INSERT OR REPLACE", "INSERT", 1) for table, sql in _REPLACE.items()}
# Every column but id (the first) is set; id is the WHERE parameter, passed last.
_UPDATE = {
    table: f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns[1:])} WHERE id = ?"
    for table, columns in TABLE_COLUMNS.items()
}


def open_store(root: Path | str) -> sqlite3.Connection:
    """Create ``root`` as a storage root if needed and open the service's connection.

    Makes ``<root>/database`` and ``<root>/executions`` (``mkdir -p``), connects to
    ``<root>/database/stepflow.db``, applies :data:`STARTUP_PRAGMAS`, creates the schema
    when missing and runs ``PRAGMA wal_checkpoint(TRUNCATE)``.

    Returns the open connection (Python's default transaction handling: a write opens a
    transaction, ``commit()`` ends it). The caller closes it; closing the last connection
    makes SQLite checkpoint and delete ``-wal``/``-shm``.

    Raises ``OSError`` when the folders cannot be created and ``sqlite3.Error`` when the
    database cannot be opened or is not a database.
    """
    root = Path(root)
    (root / DB_RELPATH).parent.mkdir(parents=True, exist_ok=True)
    (root / "executions").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(root / DB_RELPATH), timeout=30.0)
    try:
        for pragma in STARTUP_PRAGMAS:
            conn.execute(pragma).fetchall()
        for statement in SCHEMA:
            conn.execute(statement)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


# --------------------------------------------------------------------------- column values


def _iso(moment: _dt.datetime) -> str:
    """Format a naive local datetime the way the service does (always with microseconds)."""
    return moment.isoformat(timespec="microseconds")


def now_iso() -> str:
    """The current local time as the service writes it: ``2026-11-21T19:55:36.733484``."""
    return _iso(_dt.datetime.now())


def iso_from_epoch(seconds: float) -> str:
    return _iso(_dt.datetime.fromtimestamp(seconds))


class FastIso:
    """``iso_from_epoch`` for bulk use: caches the local ``YYYY-MM-DDTHH:MM:`` per minute.

    Time-zone offsets are whole minutes, so a minute's prefix is the same for all its
    seconds; this is several times faster than ``datetime.fromtimestamp().isoformat()``.
    """

    def __init__(self) -> None:
        self._prefixes: dict[int, str] = {}

    def __call__(self, seconds: float) -> str:
        micros = round(seconds * 1_000_000)
        whole, micro = divmod(micros, 1_000_000)
        minute, second = divmod(whole, 60)
        prefix = self._prefixes.get(minute)
        if prefix is None:
            prefix = _dt.datetime.fromtimestamp(minute * 60).isoformat()[:17]
            self._prefixes[minute] = prefix
        return f"{prefix}{second:02d}.{micro:06d}"


_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def uuid4(rng: random.Random) -> str:
    """A UUID4 string drawn from ``rng`` (so that a seed makes ids reproducible).

    Equal to ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, only faster.
    """
    h = f"{(rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_json(value: object) -> str:
    return json.dumps(value)


# --------------------------------------------------------------------------- log files


def log_line(timestamp: str, text: str | bytes) -> bytes:
    payload = text if isinstance(text, bytes) else text.encode("utf-8")
    return b"[" + timestamp.encode("ascii") + b"] " + payload + b"\n"


def write_log(root: Path, execution_id: str, step_index: int, step_id: str,
              lines: Sequence[bytes]) -> None:
    """Rewrite a step's log file whole (truncate, then write), as the service does.

    Writes nothing when there are no lines yet (the fixture's running step has no file).
    """
    if not lines:
        return
    folder = root / "executions" / execution_id
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"step_{step_index}_{step_id}.log", "wb") as handle:
        handle.write(b"".join(lines))
