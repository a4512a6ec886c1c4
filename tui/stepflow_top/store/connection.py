"""The read-only connection recipe (SQLITE_WAL.md §4) and people-readable errors.

Rules this module keeps:
- ``mode=ro`` URI, ``PRAGMA query_only=1``, autocommit (``isolation_level=None``), so
  no transaction, and no snapshot, is open between statements;
- every query is fully fetched (``fetch_all``): a half-read cursor pins its snapshot
  and starves the writer's checkpoints (SQLITE_WAL.md §4, §5);
- this process never opens the database file or its ``-shm`` by hand: closing any
  descriptor of a file drops all of the process's fcntl locks on it (§3).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote


class StoreUnavailable(Exception):
    """The store cannot be read now; ``str()`` is one line a person can act on."""


def connect_readonly(database: Path, *, timeout: float = 1.0) -> sqlite3.Connection:
    """Open ``database`` read-only for use by one thread at a time; ``timeout`` is
    SQLite's busy timeout in seconds.

    Returns an autocommit connection with ``query_only`` set. ``check_same_thread``
    is off because Textual thread workers run on a fresh thread each time; callers
    must never use one connection from two threads at once.

    Raises StoreUnavailable with a one-line reason (missing file, permissions,
    read-only directory without ``-wal``/``-shm``, not a database).
    """
    if not database.exists():
        raise StoreUnavailable(f"no database at {database}")
    uri = "file:" + quote(str(database.absolute())) + "?mode=ro"
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=timeout, check_same_thread=False
        )
        conn.execute("PRAGMA query_only=1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.Error as exc:
        raise StoreUnavailable(explain(exc, database)) from None
    return conn


def fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict = ()) -> list:
    """Run one statement and fetch every row, so its snapshot ends before returning."""
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def explain(exc: sqlite3.Error, database: Path) -> str:
    """Turn an sqlite3 error into one line that says what failed and what to do."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorname", "") or ""
    if "READONLY_DIRECTORY" in code or "readonly directory" in text:
        return (
            f"{database.parent} is read-only and the database has no -wal/-shm files: "
            "a WAL reader needs them; run stepflow-top while the service is running, "
            "or on a writable copy"
        )
    if "locked" in text or "busy" in text.lower():
        return f"{database} is locked by another connection; retrying"
    if "not a database" in text or "malformed" in text or "CORRUPT" in code:
        return f"{database} is not a readable SQLite database ({text}); run stepflow-top --check"
    if "unable to open" in text or "CANTOPEN" in code:
        if not database.exists():
            return f"no database at {database}"
        return f"cannot open {database} ({text}): check read permission on the file and its folder"
    if "no such table" in text or "no such column" in text:
        return f"{database} does not look like a StepFlow store ({text})"
    return f"cannot read {database}: {text}"
