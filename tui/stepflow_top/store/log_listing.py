"""What the ``executions/`` folder holds, for the consistency checks: step log files
by name, and when each execution's folder last changed.

Layout (STEPFLOW_STORE.md): ``<root>/executions/<execution_id>/step_<step_index>_<step
id>.log``, rewritten whole at each save of its step. Nothing here opens a file: entries
are listed and ``lstat``-ed (symbolic links are never followed), so a FIFO or a link a
script planted cannot hang or mislead a check, and the process holding SQLite
connections never opens the database (SQLITE_WAL.md §3).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["LogFile", "LogListing", "LogFolders"]

_LOG_RE = re.compile(r"^step_(-?\d+)_(.+)\.log$")


@dataclass(frozen=True)
class LogFile:
    """A ``step_<index>_<step id>.log`` entry in ``executions/<folder>/``; ``odd`` says
    why it is not a log file (a link, a folder, a FIFO), else None."""

    folder: str
    name: str
    index: int
    step_id: str
    odd: str | None = None

    @property
    def rel(self) -> str:
        """``executions/<folder>/<name>``."""
        return f"executions/{self.folder}/{self.name}"


@dataclass(frozen=True)
class LogListing:
    """Every step log entry found, or ``error`` (one line) when the folder could not
    be listed."""

    files: list[LogFile] = field(default_factory=list)
    error: str | None = None


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link, not a log file (not followed)"
    if stat.S_ISDIR(mode):
        return "a folder, not a log file"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a log file"
    return "not a regular file"


def _component(name: object) -> str | None:
    """``name`` when it can be one folder name under ``executions/`` (a stored id may
    be NULL, hold a NUL byte or a ``/``: such an id has no folder)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        return None
    return name


class LogFolders:
    """Listings of ``executions_dir`` and its folders, each read at most once."""

    def __init__(self, executions_dir: Path) -> None:
        self.base = executions_dir
        self._listings: dict[str, dict[str, os.stat_result] | None] = {}

    def _listing(self, folder: str) -> dict[str, os.stat_result] | None:
        """{entry name: lstat} of one execution's folder; None when it is absent."""
        if folder not in self._listings:
            listing: dict[str, os.stat_result] | None = {}
            try:
                with os.scandir(self.base / folder) as it:
                    for entry in it:
                        try:
                            listing[entry.name] = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue  # deleted meanwhile
            except OSError:
                listing = None
            self._listings[folder] = listing
        return self._listings[folder]

    def newest_age_s(self, execution_id: object, now_epoch: float) -> float | None:
        """Seconds since anything in the execution's folder was last written (file
        times are absolute, so no time zone enters), or None without a folder or file.
        Absurd times (beyond year 9999) give a negative age, never an error."""
        folder = _component(execution_id)
        listing = self._listing(folder) if folder is not None else None
        if not listing:
            return None
        return now_epoch - max(st.st_mtime for st in listing.values())

    def step_logs(self, check_stop: Callable[[], None]) -> LogListing:
        """Every ``step_*.log`` entry under ``executions/*/``; ``check_stop`` is called
        between folders (it raises to stop). An absent ``executions/`` is normal (no
        step has printed anything yet); one that cannot be listed is an error."""
        try:
            with os.scandir(self.base) as it:
                folders = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return LogListing()
        except OSError as e:
            return LogListing(error=(
                f"cannot list {self.base}: {e.strerror or e}; run as a user who can read "
                "the storage root"))
        files: list[LogFile] = []
        for folder in folders:
            check_stop()
            for name, st in sorted((self._listing(folder) or {}).items()):
                m = _LOG_RE.match(name)
                if m:
                    files.append(LogFile(folder, name, int(m.group(1)), m.group(2),
                                         _kind(st.st_mode)))
        return LogListing(files)

    def still_there(self, log: LogFile) -> bool:
        """Whether the entry exists now (housekeeping may have deleted it meanwhile)."""
        try:
            os.lstat(self.base / log.folder / log.name)
        except OSError:
            return False
        return True
