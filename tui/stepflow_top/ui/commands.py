"""Command palette (ctrl+p, or ``:`` as in k9s): open any execution in the store by
name, id or id prefix; the loaded list is matched first, then the store is searched."""

from __future__ import annotations

import asyncio
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from .. import formatting
from ..store.connection import StoreUnavailable
from ..store.filters import FilterError
from ..store.models import Execution, Judgement
from ..store.queries import StoreReader
from ..store.text import literal
from ..wal.readonly import closed_wal_store
from .messages import OpenExecution

DISCOVER = 10
STORE_HITS = 20  # runs found in the whole store per search
MIN_STORE_QUERY = 2  # characters before the store is searched


class ExecutionCommands(Provider):
    """``open <name>`` for each execution in the loaded window, then for runs found in
    the whole store (name, user, id or command containing the query, newest first:
    ``StoreReader.executions``' bounded search, on a connection of its own in a
    thread, so the palette never waits on the refresher).

    Titles and help are plain ``Content`` (Textual parses a ``str`` help as markup,
    and so does the matcher's highlighting): a name from the store never styles the
    screen or breaks the palette.
    """

    def _entry(self, execution: Execution, judgement: Judgement) -> tuple[str, str]:
        status = execution.effective_status(judgement)
        title = f"open {literal(execution.name)}  {status.label}"
        help_text = (f"{literal(execution.user_name) or '—'} · started "
                     f"{formatting.clock_time(execution.start, judgement.now)} · "
                     f"{literal(execution.id)}")
        return title, help_text

    def _entries(self) -> list[tuple[str, str, Execution]]:
        snapshot = self.app.snapshot
        if snapshot is None:
            return []
        judgement = self.app.judgement()
        return [(*self._entry(e, judgement), e) for e in snapshot.executions]

    def _opener(self, execution_id: str):
        return partial(self.app.post_message, OpenExecution(execution_id))

    def _search_store(self, query: str, judgement: Judgement, wal_mode: bool | None
                      ) -> list[Execution]:
        reader = StoreReader(self.app.paths)
        try:
            with reader.session(immutable=closed_wal_store(self.app.paths.database, wal_mode)):
                return list(reader.executions(judgement, limit=STORE_HITS, text=query).executions)
        except (StoreUnavailable, FilterError):
            return []

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        shown = set()
        for title, help_text, execution in self._entries():
            score = max(matcher.match(title), matcher.match(execution.id))
            if score > 0:
                shown.add(execution.id)
                yield Hit(score, Content(title), self._opener(execution.id),
                          text=title, help=Content(help_text))
        if len(query.strip()) < MIN_STORE_QUERY:
            return
        snapshot = self.app.snapshot
        sample = snapshot.sample if snapshot is not None else None
        judgement = self.app.judgement()
        found = await asyncio.to_thread(self._search_store, query.strip(), judgement,
                                        sample.wal_mode if sample is not None else None)
        for execution in found:
            if execution.id in shown:
                continue
            title, help_text = self._entry(execution, judgement)
            score = max(matcher.match(title), matcher.match(execution.id), 0.01)
            yield Hit(score, Content(title), self._opener(execution.id),
                      text=title, help=Content(help_text))

    async def discover(self) -> Hits:
        for title, help_text, execution in self._entries()[:DISCOVER]:
            yield DiscoveryHit(Content(title), self._opener(execution.id),
                               text=title, help=Content(help_text))
