"""Messages between screens and the App (DESIGN.md: screens post messages, the App
navigates and owns the watchers; no screen imports the App)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from ..live.checks import CheckReport
    from ..live.health import HealthState
    from ..live.refresher import StoreSnapshot
    from ..store.models import Execution, Step


@dataclass
class FilesChanged(Message, bubble=False):
    """A file-event hint arrived; the App posts it to the current screen (log views
    re-check their file)."""


@dataclass
class OpenExecution(Message):
    """Show the detail screen of execution ``execution_id`` (the list's enter, the
    command palette)."""

    execution_id: str


@dataclass
class OpenLog(Message):
    """Show the log of ``step`` of ``execution``, read from ``path``."""

    execution: Execution
    step: Step
    path: Path


@dataclass
class WatchFolder(Message):
    """A screen asks the App to watch ``folder`` for file events as well as the
    database folder (an open step's log folder); ``None`` stops watching it."""

    folder: Path | None


class SnapshotReady(Message):
    """A refresh finished; ``snapshot`` is None when nothing changed. ``health``, the
    health reading taken with it, is posted on once the snapshot is handled: one hop
    from the worker thread for both."""

    def __init__(self, snapshot: StoreSnapshot | None, health: Message | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.health = health


class HealthReady(Message):
    """A health sample was taken."""

    def __init__(self, state: HealthState) -> None:
        super().__init__()
        self.state = state


class ChecksDone(Message):
    """An integrity/consistency run ended."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__()
        self.report = report


class CheckProgress(Message):
    """A running check got further: ``fraction`` 0..1 and a phrase saying where."""

    def __init__(self, fraction: float, phrase: str) -> None:
        super().__init__()
        self.fraction = fraction
        self.phrase = phrase

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckProgress)  # only the latest matters
