"""Command palette (ctrl+p, or ``:`` as in k9s): open any execution in the store by
name, id or id prefix; the loaded list is matched first, then the store is searched
(with several stores, each of them: ``live.stores``)."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Iterator

from textual.app import SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from .. import formatting
from ..live.stores import MergedSnapshot, row_key
from ..store.locate import StorePaths
from ..store.connection import StoreUnavailable
from ..store.filters import FilterError
from ..store.models import Execution, Judgement
from ..store.queries import StoreReader
from ..store.text import literal
from ..wal.readonly import closed_wal_store
from .messages import OpenExecution

if TYPE_CHECKING:
    from .app import StepflowTop

DISCOVER = 10
STORE_HITS = 20  # runs found in the whole store per search
MIN_STORE_QUERY = 2  # characters before the store is searched


def monitor_commands(app: StepflowTop) -> Iterator[SystemCommand]:
    """The monitor's own entries in the palette's system commands."""
    yield SystemCommand("Executions", "The executions list (key 1)",
                        lambda: app.switch_mode("executions"))
    yield SystemCommand("Database health", "WAL, checkpoint history, integrity (key 2)",
                        lambda: app.switch_mode("health"))
    yield SystemCommand("Run quick_check", "quick_check and foreign_key_check on a copy",
                        lambda: app.start_checks("quick"))
    yield SystemCommand("Run integrity_check", "The full check, on a copy of the database",
                        lambda: app.start_checks("full"))
    yield SystemCommand("Run StepFlow consistency checks",
                        "Orphan rows, totals, stuck runs, missing or orphaned logs",
                        lambda: app.start_checks("consistency"))
    yield SystemCommand("Pause / resume", "Stop applying updates (key p)",
                        app.action_toggle_pause)


class ExecutionCommands(Provider):
    """``open <name>`` for each execution in the loaded window, then for runs found in
    the whole store (name, user, id or command containing the query, newest first:
    ``StoreReader.executions``' bounded search, on a connection of its own in a
    thread, so the palette never waits on the refresher).

    Titles and help are plain ``Content`` (Textual parses a ``str`` help as markup,
    and so does the matcher's highlighting): a name from the store never styles the
    screen or breaks the palette.
    """

    def _entry(self, execution: Execution, judgement: Judgement,
               store: str = "") -> tuple[str, str]:
        status = execution.effective_status(judgement)
        where = f"{literal(store)}: " if store else ""
        title = f"open {where}{literal(execution.name)}  {status.label}"
        help_text = (f"{literal(execution.user_name) or '—'} · started "
                     f"{formatting.clock_time(execution.start, judgement.now)} · "
                     f"{literal(execution.id)}")
        return title, help_text

    def _entries(self) -> list[tuple[str, str, str, Execution]]:
        """(title, help, row key, execution) of each loaded row."""
        snapshot = self.app.snapshot
        if snapshot is None:
            return []
        if isinstance(snapshot, MergedSnapshot):
            return [(*self._entry(r.execution, r.judgement, r.store), r.key, r.execution)
                    for r in snapshot.rows(self.app.now)]
        judgement = self.app.judgement()
        return [(*self._entry(e, judgement), e.id, e) for e in snapshot.executions]

    def _stores(self) -> list[tuple[StorePaths, str, Judgement, bool | None]]:
        """(paths, label, judgement, WAL mode) of each store to search: the one store,
        or each readable store of several ("" as the label of one store)."""
        snapshot = self.app.snapshot
        if isinstance(snapshot, MergedSnapshot):
            return [(p.paths, p.label, p.snapshot.judgement(self.app.now),
                     p.snapshot.sample.wal_mode if p.snapshot.sample is not None else None)
                    for p in snapshot.parts if p.snapshot is not None and not p.snapshot.error]
        sample = snapshot.sample if snapshot is not None else None
        return [(self.app.paths, "", self.app.judgement(),
                 sample.wal_mode if sample is not None else None)]

    def _opener(self, key: str):
        return partial(self.app.post_message, OpenExecution(key))

    def _search_store(self, paths: StorePaths, query: str, judgement: Judgement,
                      wal_mode: bool | None) -> list[Execution]:
        reader = StoreReader(paths)
        try:
            with reader.session(immutable=closed_wal_store(paths.database, wal_mode)):
                return list(reader.executions(judgement, limit=STORE_HITS, text=query).executions)
        except (StoreUnavailable, FilterError):
            return []

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        shown = set()
        for title, help_text, key, execution in self._entries():
            score = max(matcher.match(title), matcher.match(execution.id))
            if score > 0:
                shown.add(key)
                yield Hit(score, Content(title), self._opener(key),
                          text=title, help=Content(help_text))
        if len(query.strip()) < MIN_STORE_QUERY:
            return
        for paths, label, judgement, wal_mode in self._stores():
            found = await asyncio.to_thread(self._search_store, paths, query.strip(),
                                            judgement, wal_mode)
            for execution in found:
                key = row_key(label, execution.id) if label else execution.id
                if key in shown:
                    continue
                title, help_text = self._entry(execution, judgement, label)
                score = max(matcher.match(title), matcher.match(execution.id), 0.01)
                yield Hit(score, Content(title), self._opener(key),
                          text=title, help=Content(help_text))

    async def discover(self) -> Hits:
        for title, help_text, key, _execution in self._entries()[:DISCOVER]:
            yield DiscoveryHit(Content(title), self._opener(key),
                               text=title, help=Content(help_text))
