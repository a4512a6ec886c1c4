"""SQLite's check output and errors in words for people: one line per problem,
naming the table or index that owns a damaged page.

Sources: pragma.html (``integrity_check``/``quick_check`` output, the table argument,
``foreign_key_check`` columns), dbstat.html (page owners), rescode.html (error names).
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from typing import Any, Iterable, Sequence

__all__ = ["MAX_DETAILS", "describe", "fk_line", "name_pages", "per_table", "split_messages"]

#: At most this many problem lines are kept per check.
MAX_DETAILS = 100


def describe(e: BaseException) -> tuple[str, str]:
    """(status, message) for a SQLite error: corruption is a finding, the rest an error."""
    name = getattr(e, "sqlite_errorname", "") or ""
    msg = str(e)
    if name.startswith("SQLITE_CORRUPT") or "malformed" in msg:
        said = "database disk image is malformed"
        return "failed", msg if msg == said else f"{said}: {msg}"
    if name == "SQLITE_NOTADB" or "not a database" in msg:
        return "error", f"not a SQLite database (or encrypted): {msg}"
    if name.startswith("SQLITE_BUSY") or "locked" in msg:
        return "error", f"database is busy: {msg}"
    if name.startswith("SQLITE_FULL") or "disk is full" in msg:
        return "error", (f"no room for the private copy ({msg}): free space in "
                         f"{tempfile.gettempdir()} or set TMPDIR")
    if name.startswith("SQLITE_NOMEM") or "out of memory" in msg:
        return "error", f"not enough memory for the private copy ({msg})"
    return "error", msg


def per_table(conn: sqlite3.Connection, check: str) -> list[tuple[str]]:
    """``PRAGMA <check>(<table>)`` for each table (pragma.html: the argument limits the
    check to that table and its indexes), prefixing each message with the table name."""
    out: list[tuple[str]] = []
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()]
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        try:
            rows = conn.execute(f"PRAGMA {check}({quoted})").fetchall()
            out += [(f"table {table}: {line}",) for line in split_messages(rows)]
        except sqlite3.DatabaseError as e:
            status, msg = describe(e)
            if status != "failed":
                raise
            out.append((f"table {table}: {msg}",))
    return out


def split_messages(rows: Iterable[Sequence[Any]]) -> list[str]:
    """One line per problem: a row may hold several lines, and a ``*** in database
    main ***`` heading (SQLite's integrity_check output, pragma.html)."""
    out: list[str] = []
    for r in rows:
        for line in str(r[0]).splitlines():
            line = line.strip()
            if line and line != "ok" and not line.startswith("*** in database"):
                out.append(line)
    if len(out) > MAX_DETAILS:
        out = out[:MAX_DETAILS] + [f"(more than {MAX_DETAILS} problems; first shown)"]
    return out


PAGE_RE = re.compile(r"\bpage (\d+)", re.IGNORECASE)


def name_pages(conn: sqlite3.Connection, lines: list[str]) -> list[str]:
    """Append the table or index owning each page a message names, found with the
    ``dbstat`` virtual table on the copy (sqlite.org dbstat.html) when it is available;
    lines are returned unchanged when it is not or cannot read the damaged b-trees."""
    pages = {int(m) for line in lines for m in PAGE_RE.findall(line)}
    if not pages:
        return lines
    owner: dict[int, str] = {}
    try:
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master").fetchall())
        for name, pageno in conn.execute("SELECT name, pageno FROM dbstat"):
            if pageno in pages and pageno not in owner:
                owner[pageno] = f"{kinds.get(name, 'b-tree')} {name}"
    except sqlite3.Error:
        pass  # no dbstat, or too damaged to walk: keep SQLite's own words
    out = []
    for line in lines:
        named = sorted({owner[int(m)] for m in PAGE_RE.findall(line) if int(m) in owner})
        out.append(f"{line} ({', '.join(named)})" if named else line)
    return out


def fk_line(row: Sequence[Any]) -> str:
    table, rowid, parent, fkid = (list(row) + [None] * 4)[:4]
    where = f"rowid {rowid}" if rowid is not None else "a row without rowid"
    return (f"{table} {where}: no matching row in {parent} "
            f"(foreign key #{fkid} of {table})")
