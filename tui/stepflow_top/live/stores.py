"""Several stores read as one: a Refresher per store, their snapshots merged.

Each store keeps everything a single store has (DESIGN.md): its own ``Refresher``, so its
own probe process, change feed, short read-only sessions and change token. A refresh
of the set asks every store in turn; a store whose files did not move costs a probe
sample and two ``stat()`` calls, as when it is watched alone. The merged list is newest
first across stores, by ``created_at`` normalised to UTC with each store's writer
offset (STEPFLOW_STORE.md: times are the writer's local time, no zone), and every row
is judged with its own store's ``Judgement``: a dead service in one store never makes
another store's runs lost.

Rows are keyed ``<store label>/<execution id>`` (:func:`row_key`): the fixture copied
twice has the same ids in both stores. A ``ViewRequest.execution_id`` given as a row key
opens that store's detail; the store it names is the *focused* one, whose judgement,
writer and sample the merged snapshot carries (the detail and log screens read them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Iterator

from ..store.locate import StorePaths
from ..store.models import (
    DEFAULT_STALL_AFTER,
    LIVE_STORED,
    Counts,
    Execution,
    Judgement,
    local_offset,
)
from ..wal.probe import Probe
from .refresher import Refresher, StoreSnapshot, ViewRequest
from .writer import WriterState

KEY_SEPARATOR = "/"  # never in a label (locate_stores refuses a NAME with "/") nor a UUID
STORE_QUALIFIER = "store:"


def row_key(label: str, execution_id: str) -> str:
    """The executions table's key of a row of store ``label``."""
    return f"{label}{KEY_SEPARATOR}{execution_id}"


def split_key(key: str) -> tuple[str, str]:
    """``(label, execution id)`` of a :func:`row_key`; ``("", key)`` for a bare id."""
    label, sep, execution_id = key.rpartition(KEY_SEPARATOR)
    return (label, execution_id) if sep else ("", key)


@dataclass(frozen=True)
class StorePart:
    """One store's share of a merged snapshot: its paths and its latest snapshot
    (None until the first refresh answered)."""

    paths: StorePaths
    snapshot: StoreSnapshot | None = None

    @property
    def label(self) -> str:
        return self.paths.label


@dataclass(frozen=True)
class Row:
    """One line of the merged executions list: its table ``key``, ``store`` label, the
    ``execution`` as its store read it, and the ``judgement`` of that store."""

    key: str
    store: str
    execution: Execution
    judgement: Judgement


@dataclass(frozen=True)
class MergedSnapshot(StoreSnapshot):
    """A ``StoreSnapshot`` of several stores (see the module docstring).

    ``executions`` are the merged rows (``keys`` and ``owners``, the index into ``parts``,
    run beside them); ``error`` is set only when no store could be read; ``writer``,
    ``detail``, ``sample`` and :meth:`judgement` are the focused store's; ``counts``
    sums the stores (judge its ``live`` rows per store with :func:`part_counts`);
    ``fresh`` holds the indices of the parts this refresh read anew."""

    parts: tuple[StorePart, ...] = ()
    keys: tuple[str, ...] = ()
    owners: tuple[int, ...] = ()
    focus: int = 0
    fresh: frozenset[int] = frozenset()

    def judgement(self, now: datetime | None = None) -> Judgement:
        part = self.parts[self.focus].snapshot if self.parts else None
        if part is None or part.error:
            return Judgement(now or self.taken_at, self.stall_after)
        return part.judgement(now)

    def rows(self, now: datetime) -> Iterator[Row]:
        """The merged rows, each judged by its store at reader-local ``now``."""
        judgements = [p.snapshot.judgement(now) if p.snapshot is not None else None
                      for p in self.parts]
        for key, owner, execution in zip(self.keys, self.owners, self.executions):
            yield Row(key, self.parts[owner].label, execution, judgements[owner])


def wanted_stores(text: str) -> tuple[tuple[str, ...], str]:
    """The ``store:NAME`` words of a ``/`` filter (lower-cased) and the filter without
    them, which each store's reader applies (``store.filters``)."""
    names, rest = [], []
    for token in text.split():
        if token.lower().startswith(STORE_QUALIFIER) and len(token) > len(STORE_QUALIFIER):
            names.append(token[len(STORE_QUALIFIER):].lower())
        else:
            rest.append(token)
    return tuple(names), " ".join(rest)


class StoreSet:
    """Refreshes several stores (see the module docstring); the ``Refresher`` interface
    the App drives: :meth:`refresh`, :meth:`close` and ``probe`` (the first store's,
    for the App's own health monitor).

    ``stall_after`` in seconds and ``writer_tz`` as for ``Refresher``; one zone given
    with ``--writer-tz`` applies to every store. ``probes``: one per store, started
    and closed by the caller (None: each Refresher starts and closes its own)."""

    def __init__(self, stores: list[StorePaths], *, stall_after: float = DEFAULT_STALL_AFTER,
                 writer_tz: tzinfo | None | str = "infer",
                 probes: list[Probe] | None = None) -> None:
        self.stores = list(stores)
        self.stall_after = stall_after
        self.refreshers = [Refresher(p, stall_after=stall_after, writer_tz=writer_tz,
                                     probe=probes[i] if probes else None)
                           for i, p in enumerate(self.stores)]
        self.probe = self.refreshers[0].probe
        self._latest: list[StoreSnapshot | None] = [None] * len(self.stores)

    def store_of(self, key: str | None) -> int:
        """Index of the store a row key names (0 for None, a bare id or an unknown label)."""
        if key is None:
            return 0
        label = split_key(key)[0]
        return next((i for i, p in enumerate(self.stores) if p.label == label), 0)

    def refresh(self, request: ViewRequest, now: datetime, *, force: bool = False,
                tables: bool = False) -> MergedSnapshot | None:
        """A merged snapshot, or None when no store has anything new (and ``force`` is
        false). ``now`` is the reader's local naive time. Never raises: a store that
        cannot be read is a part whose snapshot has ``error`` set."""
        names, text = wanted_stores(request.text)
        focus = self.store_of(request.execution_id)
        changed, fresh = False, set()
        for i, (paths, refresher) in enumerate(zip(self.stores, self.refreshers)):
            shown = not names or paths.label.lower() in names
            own = replace(request, text=text, limit=request.limit if shown else 0,
                          execution_id=(split_key(request.execution_id)[1]
                                        if request.execution_id and i == focus else None))
            snapshot = refresher.refresh(own, now, force=force, tables=tables)
            if snapshot is None:
                continue
            before = self._latest[i]
            # A store still missing answers with the same error on every look: not news.
            if not (before is not None and snapshot.error and before.error == snapshot.error
                    and before.request == snapshot.request):
                changed = True
            self._latest[i] = snapshot
            fresh.add(i)
        if not changed and not force:
            return None
        return merge(self.stores, self._latest, request, now, focus, self.stall_after, fresh)

    def close(self) -> None:
        for refresher in self.refreshers:
            refresher.close()


def merge(stores: list[StorePaths], latest: list[StoreSnapshot | None], request: ViewRequest,
          now: datetime, focus: int, stall_after: float, fresh: set[int]) -> MergedSnapshot:
    """One ``MergedSnapshot`` of each store's ``latest`` snapshot, ordered as ``request``
    asks and cut to its ``limit``; change-feed ``events`` (each with its ``store``) and
    ``replaced`` come from the stores in ``fresh`` alone, the ones read this time."""
    parts = tuple(StorePart(p, s) for p, s in zip(stores, latest))
    readable = [(i, s) for i, s in enumerate(latest) if s is not None and not s.error]
    rows = [(i, e) for i, s in readable for e in s.executions]
    offsets = {i: s.writer.offset for i, s in readable}
    order = functools.cmp_to_key(
        lambda a, b: _compare(_terms(request.sort, *a, offsets, now), _terms(
            request.sort, *b, offsets, now), request.reverse))
    rows.sort(key=order)
    rows = rows[:request.limit]
    focused = latest[focus]
    stored: dict[str, int] = {}
    for _, s in readable:
        for word, n in s.counts.stored.items():
            stored[word] = stored.get(word, 0) + n
    errors = [f"{p.label}: {s.error}" for p, s in zip(stores, latest) if s is not None and s.error]
    base = focused if focused is not None and not focused.error else None
    return MergedSnapshot(
        taken_at=now, request=request,
        journal_mode=next((s.journal_mode for _, s in readable if s.journal_mode != "wal"),
                          "wal" if readable else "?"),
        counts=Counts(executions=sum(s.counts.executions for _, s in readable), stored=stored,
                      live=tuple(e for _, s in readable for e in s.counts.live)),
        executions=tuple(e for _, e in rows),
        detail=base.detail if base is not None else None,
        error="; ".join(errors) if not readable and errors else None,
        events=tuple({**e, "store": stores[i].label} for i, s in enumerate(latest)
                     if s is not None and i in fresh for e in s.events),
        writer=base.writer if base is not None else WriterState(),
        stall_after=stall_after,
        searched=max((s.searched for _, s in readable if s.searched is not None), default=None),
        damaged_after=next((s.damaged_after for _, s in readable
                            if s.damaged_after is not None), None),
        replaced=any(s.replaced for i, s in readable if i in fresh),
        sample=base.sample if base is not None else None,
        parts=parts,
        keys=tuple(row_key(stores[i].label, e.id) for i, e in rows),
        owners=tuple(i for i, _ in rows),
        focus=focus,
        fresh=frozenset(fresh),
    )


def part_counts(part: StorePart, now: datetime) -> dict[str, int]:
    """Executions of one store per effective status word, judged by that store at
    reader-local ``now`` (empty when it has not been read)."""
    snapshot = part.snapshot
    if snapshot is None or snapshot.error:
        return {}
    return snapshot.counts.by_status(snapshot.judgement(now))


# -- the sort orders of store.order.SORT_ORDERS, applied in Python to merged rows ------

_STATUS_RANK = {"failed": 1, "cancelled": 2, "completed": 3}


def _terms(sort: str, owner: int, e: Execution, offsets: dict[int, timedelta],
           now: datetime) -> list[tuple[object, bool]]:
    """(value, descending) terms mirroring ``store.order.SORT_ORDERS[sort]``; times are
    UTC (writer-local minus the store's offset) so that stores in different zones
    interleave truly."""
    offset = offsets.get(owner, timedelta(0))
    created = (e.created_at - offset) if e.created_at is not None else None
    newest = [(created is not None, True), (created or datetime.min, True)]
    stored = e.stored_status.lower()
    if sort == "status":
        rank = 0 if stored in LIVE_STORED else _STATUS_RANK.get(stored, 4)
        return [(rank, False), *newest]
    if sort == "name":
        return [((e.name or "").casefold(), False), *newest]
    if sort == "user":
        return [(e.user_name is None, False), ((e.user_name or "").casefold(), False), *newest]
    if sort == "duration":
        start = e.started_at or e.created_at
        writer_now = now - local_offset() + offset
        end = e.completed_at or (writer_now if stored in LIVE_STORED else None)
        duration = (end - start).total_seconds() if start and end else None
        return [(duration is None, False), (duration or 0.0, True), *newest]
    if sort == "exit":
        code = e.exit_code
        return [(code is None, False), (code == 0, False), (code or 0, True), *newest]
    return newest


def _compare(a: list[tuple[object, bool]], b: list[tuple[object, bool]], reverse: bool) -> int:
    for (x, descending), (y, _) in zip(a, b):
        if x != y:
            less = x < y  # type: ignore[operator]
            first = (not less) if descending else less
            return (-1 if first else 1) * (-1 if reverse else 1)
    return 0
