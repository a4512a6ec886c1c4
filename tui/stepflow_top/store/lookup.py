"""Finding the execution a person means: an id, an id prefix, a name or ``latest``.

``gh run watch`` and ``git`` take an unambiguous prefix of an id; StepFlow users also
know their runs by name (the service defaults the name to the command line:
STEPFLOW_STORE.md), and a name stands for its newest run. Each statement is bounded and
uses an index: ``id`` is the primary key (a range over it finds a prefix); ``name`` has
no index, so the newest run of a name is looked for in slices of NAME_SLICE rows of
``executions(created_at)``, newest first, each slice its own statement, so that no read
snapshot is held for long (DESIGN.md promise 2). A name that matches nothing walks the
whole table: 0.47-0.56 s in 104 statements of at most 20 ms on a million executions
(``demo.bulk.populate``, warm page cache, 2 shared cores).
"""

from __future__ import annotations

from dataclasses import dataclass

from .queries import StoreReader
from .rows import text_value

LATEST = "latest"
MAX_CANDIDATES = 10  # candidates listed for an ambiguous prefix
NAME_SLICE = 20_000  # rows of executions(created_at) per statement of a name search
_HIGHEST = "\U0010ffff"  # sorts after every character SQLite's BINARY collation meets


@dataclass(frozen=True)
class Candidate:
    """An execution a query may mean: its ``id``, ``name`` and ``created_at`` as stored
    (writer-local ISO text, None when missing)."""

    id: str
    name: str
    created_at: str | None

    def describe(self) -> str:
        """``<id>  <name>  created <created_at>`` for a list of candidates."""
        return f"{self.id}  {self.name}  created {self.created_at or '?'}"


def find_executions(reader: StoreReader, query: str) -> list[Candidate]:
    """The executions ``query`` may mean, inside an open ``reader`` session.

    ``latest``: the newest execution (by ``created_at``). Otherwise an exact id wins
    alone; else the candidates are the executions whose id starts with ``query`` (or
    its lower case: ids are lower-case UUIDs), at most MAX_CANDIDATES + 1 of them, and
    the newest execution named ``query``. One candidate is the run; several are
    ambiguous; none means no such run. Raises StoreUnavailable (one line) when the
    store cannot be read.
    """
    select = "SELECT id, name, created_at FROM executions "
    if query == LATEST:
        return _candidates(reader, select + "ORDER BY created_at DESC, rowid DESC LIMIT 1", [])
    exact = _candidates(reader, select + "WHERE id = ?", [query])
    if exact:
        return exact
    found: dict[str, Candidate] = {}
    for prefix in dict.fromkeys((query, query.lower())):
        for candidate in _candidates(
                reader, select + "WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                [prefix, prefix + _HIGHEST, MAX_CANDIDATES + 1]):
            found.setdefault(candidate.id, candidate)
    for candidate in _newest_named(reader, query):
        found.setdefault(candidate.id, candidate)
    return list(found.values())


def _newest_named(reader: StoreReader, name: str) -> list[Candidate]:
    """The newest execution named ``name`` (an empty list when none is), in slices of
    NAME_SLICE rows by (created_at, rowid), newest first. Rows with no created_at are
    not searched (the service always writes one)."""
    upper: list = [_HIGHEST, 1 << 62]
    while True:
        edge = reader.rows("SELECT created_at, rowid FROM executions "
                           "WHERE (created_at, rowid) < (?, ?) "
                           "ORDER BY created_at DESC, rowid DESC LIMIT 1 OFFSET ?",
                           [*upper, NAME_SLICE - 1])
        lower = list(edge[0]) if edge else ["", -(1 << 62)]
        found = _candidates(
            reader, "SELECT id, name, created_at FROM executions "
                    "WHERE (created_at, rowid) < (?, ?) AND (created_at, rowid) >= (?, ?) "
                    "AND name = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [*upper, *lower, name])
        if found or not edge:
            return found
        upper = lower


def _candidates(reader: StoreReader, sql: str, params: list) -> list[Candidate]:
    return [Candidate(text_value(i) or "", text_value(n) or "", text_value(c))
            for i, n, c in reader.rows(sql, params)]
