"""Opening a store's database for reading, and errors worded for people.

The connection recipe itself lives in ``wal.readonly`` (written once, used by every
reader); this module adds the check that the file is a readable SQLite database and
turns ``sqlite3`` errors into one line that says what failed and what to do.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from ..wal import readonly
from ..wal.readonly import fetch_all

__all__ = ["StoreDamaged", "StoreUnavailable", "connect_readonly", "explain", "fetch_all",
           "is_corruption"]


class StoreUnavailable(Exception):
    """The store cannot be read now; ``str()`` is one line a person can act on."""


class StoreDamaged(StoreUnavailable):
    """A page the query needed is corrupt (SQLITE_CORRUPT): other rows may still read."""


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` reports a damaged database file (SQLITE_CORRUPT, "malformed")."""
    return "CORRUPT" in (getattr(exc, "sqlite_errorname", "") or "") or "malformed" in str(exc)


def connect_readonly(
    database: Path, *, immutable: bool = False, timeout: float = 1.0
) -> sqlite3.Connection:
    """Open ``database`` with the read-only recipe (``wal.readonly.connect``; see there
    for ``immutable`` and ``timeout``) and check that it is a readable SQLite file.

    Raises StoreUnavailable with a one-line reason (missing file, permissions,
    read-only directory without ``-wal``/``-shm``, not a database).
    """
    try:
        mode = os.stat(database).st_mode
    except FileNotFoundError:
        raise StoreUnavailable(f"no database at {database}") from None
    except OSError as exc:
        raise StoreUnavailable(f"cannot read {database}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        # SQLite's open() of a FIFO blocks for ever (and a device is no database).
        raise StoreUnavailable(f"{database} is {_file_kind(mode)}, not a database file")
    try:
        conn = readonly.connect(database, immutable=immutable, timeout=timeout)
    except sqlite3.Error as exc:
        raise StoreUnavailable(explain(exc, database)) from None
    try:
        fetch_all(conn, "SELECT count(*) FROM sqlite_master")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreUnavailable(explain(exc, database)) from None
    return conn


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
    if "FULL" in code or "full" in text or (("IOERR" in code or "I/O" in text)
                                           and _disk_full(database.parent)):
        return (f"the disk holding {database.parent} is full: SQLite cannot open its "
                "-shm/-wal there; free some space")
    if "locked" in text or "busy" in text.lower():
        return f"{database} is locked by another process"
    if "not a database" in text or "malformed" in text or "CORRUPT" in code:
        return f"{database} is not a readable SQLite database ({text}); run stepflow-top --check"
    if "unable to open" in text or "CANTOPEN" in code:
        if not database.exists():
            return f"no database at {database}"
        return f"cannot open {database} ({text}): check read permission on the file and its folder"
    if "no such table" in text or "no such column" in text:
        return f"{database} does not look like a StepFlow store ({text})"
    return f"cannot read {database}: {text}"


def _disk_full(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail == 0


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a regular file"
