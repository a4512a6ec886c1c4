"""Command palette (ctrl+p): open any execution in the current list by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from .. import formatting
from ..store.models import Execution
from ..store.text import literal
from .messages import OpenExecution

DISCOVER = 10


class ExecutionCommands(Provider):
    """``open <name>`` for each execution in the loaded window, newest first.

    Titles and help are plain ``Content`` (Textual parses a ``str`` help as markup,
    and so does the matcher's highlighting): a name from the store never styles the
    screen or breaks the palette.
    """

    def _entries(self) -> list[tuple[str, str, Execution]]:
        app = self.app
        snapshot = app.snapshot
        if snapshot is None:
            return []
        entries = []
        judgement = app.judgement()
        for execution in snapshot.executions:
            status = execution.effective_status(judgement)
            title = f"open {literal(execution.name)}  {status.label}"
            help_text = (f"{literal(execution.user_name) or '—'} · started "
                         f"{formatting.clock_time(execution.start, judgement.now)} · "
                         f"{literal(execution.id)}")
            entries.append((title, help_text, execution))
        return entries

    def _opener(self, execution_id: str):
        return partial(self.app.post_message, OpenExecution(execution_id))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, execution in self._entries():
            score = max(matcher.match(title), matcher.match(execution.id))
            if score > 0:
                yield Hit(score, Content(title), self._opener(execution.id),
                          text=title, help=Content(help_text))

    async def discover(self) -> Hits:
        for title, help_text, execution in self._entries()[:DISCOVER]:
            yield DiscoveryHit(Content(title), self._opener(execution.id),
                               text=title, help=Content(help_text))
