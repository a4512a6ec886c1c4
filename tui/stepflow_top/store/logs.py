"""Reading a step's log file, which the service rewrites whole on every save.

The service truncates and rewrites ``step_<index>_<id>.log`` each time the step's row
is saved (STEPFLOW_STORE.md), so a file can shrink, vanish for a moment, or show
half a write. Output produced between saves lives only in the service's memory:
a running step's file is usually absent or behind. Only the last ``max_bytes`` of a
file are read, however large it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .text import decode, literal

DEFAULT_MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class LogRead:
    """One read of a log file.

    ``lines`` are literal-safe (see ``text.literal``); ``skipped_bytes`` counts the
    bytes before the window that were not read (0 for a whole file); ``size`` is the
    file size in bytes; ``mtime_ns``/``inode`` identify the version read.
    ``missing`` says why there is no file to read (its first line is a summary).
    """

    lines: tuple[str, ...]
    skipped_bytes: int = 0
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    missing: str | None = None

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.inode, self.size, self.mtime_ns)


def read_log(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LogRead:
    """Read the last ``max_bytes`` of ``path``; never raises for a missing or
    unreadable file (``missing`` says why instead)."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            skipped = max(0, stat.st_size - max_bytes)
            handle.seek(skipped)
            data = handle.read(max_bytes)
    except FileNotFoundError:
        return LogRead((), missing=(
            "No log file yet.\n"
            "The service writes a step's log when it saves the step's row (at its\n"
            "start and end), so a running step's output may not be on disk yet."
        ))
    except IsADirectoryError:
        return LogRead((), missing=f"{path} is a directory, not a log file")
    except PermissionError:
        return LogRead((), missing=f"cannot read {path}: permission denied")
    except OSError as exc:
        return LogRead((), missing=f"cannot read {path}: {exc.strerror or exc}")
    if skipped:
        # Drop the partial first line of the window.
        cut = data.find(b"\n")
        if cut != -1:
            skipped += cut + 1
            data = data[cut + 1 :]
    text = decode(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return LogRead(
        tuple(literal(line.rstrip("\r")) for line in lines),
        skipped_bytes=skipped,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        inode=stat.st_ino,
    )


def log_version(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns) of ``path`` without opening it; None when absent."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
