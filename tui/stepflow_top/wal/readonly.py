"""The one read-only connection recipe; every reader in stepflow-top opens through it.

SQLITE_WAL.md §4: a ``mode=ro`` URI, autocommit (``isolation_level=None``, so no
transaction and no snapshot is open between statements) and ``PRAGMA query_only=1``.
Every statement is fully fetched (:func:`fetch_all`): a half-read cursor pins its
snapshot and starves the writer's checkpoints (§4, §5).

``mode=ro`` still creates ``-wal`` and ``-shm`` when a WAL database has none (§4): the
files would then belong to the monitoring user, and a service restarted as another user
fails with "attempt to write a readonly database". A WAL database with no ``-wal`` is
closed (the last connection checkpointed everything and deleted the files, §1), so
``immutable=1`` reads it exactly and creates nothing (:func:`closed_wal_store`).

This module opens no file by hand: closing any descriptor of the database or ``-shm``
would drop the process's fcntl locks (§3). Whether the file is in WAL mode comes from
its header as read by the probe process (``WalSample.wal_mode``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

__all__ = ["connect", "closed_wal_store", "fetch_all", "wal_path"]


def wal_path(database: str | os.PathLike[str]) -> Path:
    """The ``-wal`` file beside ``database``."""
    return Path(os.fspath(database) + "-wal")


def closed_wal_store(database: str | os.PathLike[str], wal_mode: bool | None) -> bool:
    """True when ``database`` is a WAL database (``wal_mode``, from its header) with no
    ``-wal`` beside it: nobody has it open, and reading it with ``immutable=1`` is exact
    and creates no file. ``os.stat`` opens nothing, so this is safe beside connections."""
    return wal_mode is True and not wal_path(database).exists()


def connect(
    database: str | os.PathLike[str], *, immutable: bool = False, timeout: float = 1.0
) -> sqlite3.Connection:
    """Open ``database`` read-only: ``mode=ro`` (plus ``immutable=1`` when asked, for a
    closed store only: on a live one it ignores the WAL), autocommit, ``query_only``.

    ``timeout`` is SQLite's busy timeout in seconds. ``check_same_thread`` is off
    because thread workers run on a fresh thread each time; never use one connection
    from two threads at once. Raises ``sqlite3.Error`` when it cannot be opened (the
    caller words it for people).
    """
    uri = "file:" + quote(os.path.abspath(os.fspath(database))) + "?mode=ro"
    if immutable:
        uri += "&immutable=1"
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, timeout=timeout, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict = ()) -> list:
    """Run one statement and fetch every row, so its snapshot ends before returning."""
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()
