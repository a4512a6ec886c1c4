"""Messages between screens and the App (DESIGN.md: screens post messages, the App
navigates and owns the watchers; no screen imports the App)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message


@dataclass
class FilesChanged(Message):
    """A file-event hint arrived; the App posts it to the current screen (log views
    re-check their file)."""


@dataclass
class WatchFolder(Message):
    """A screen asks the App to watch ``folder`` for file events as well as the
    database folder (an open step's log folder); ``None`` stops watching it."""

    folder: Path | None
