"""Reading a step's log file safely, which the service rewrites whole on every save.

The service truncates and rewrites ``step_<index>_<id>.log`` each time the step's row
is saved (STEPFLOW_STORE.md), so a file can shrink, vanish for a moment, or show
half a write. Output produced between saves lives only in the service's memory:
a running step's file is usually absent or behind, and a step that ended without
being saved again (ended by the next step, an exit, a cancel, a timeout) keeps the
file of its last save for ever. Only the last ``max_bytes`` of a file are read.

The scripts the service runs can write into ``executions/<id>/``, so the file at a
log's path is not trusted (issue 7): it may be a symbolic link (to /etc/shadow, to
the store's own database), a FIFO, a device, or a hard link. ``open_log`` opens
only a regular file with one link whose real path is inside the store's
``executions/`` folder, without following a link or blocking on a FIFO. Opening
the database or its ``-shm`` and closing it again would drop every fcntl lock this
process's SQLite connections hold on it (POSIX close semantics, SQLITE_WAL.md §3).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .loglines import LogLine, shape_lines
from .text import decode, literal

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
NOT_ON_DISK_YET = (
    "No log file yet.\n"
    "The service writes a step's log when it saves the step's row (at its\n"
    "start and end), so a running step's output may not be on disk yet."
)
NEVER_WRITTEN = "the service never wrote this step's output after its last save"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))
# Descriptors of files that turned out to have other links once open (a swap
# between the check and the open). Another link may be the database: closing the
# descriptor would drop this process's SQLite locks on it, so it is never closed.
_NEVER_CLOSED: list[int] = []


class LogRefused(Exception):
    """The file at a log's path is not one to read; ``str()`` says why in one line."""


@dataclass(frozen=True)
class LogRead:
    """One read of a log file.

    ``raw`` holds the decoded lines as the file has them (escape sequences and all:
    never show them as they are); ``shaped`` is what to show (``loglines``) and
    ``lines`` the same spelled out literally (``text.literal``); both are computed on
    first use. ``first_cut`` says the first line began before the window (one line
    longer than ``max_bytes``). ``skipped_bytes`` counts the bytes before the
    window; ``size`` is the file size in bytes. ``missing`` says why there is
    nothing to read (its first line is a summary).
    """

    raw: tuple[str, ...]
    first_cut: bool = False
    skipped_bytes: int = 0
    size: int = 0
    missing: str | None = None

    @cached_property
    def shaped(self) -> tuple[LogLine, ...]:
        return shape_lines(self.raw, first_cut=self.first_cut)

    @cached_property
    def lines(self) -> tuple[str, ...]:
        return tuple(literal(line) for line in self.raw)


def _kind(mode: int) -> str | None:
    return next((name for test, name in _KINDS if test(mode)), None)


def _inside(real: str, folder: str) -> bool:
    return real != folder and os.path.commonpath([real, folder]) == folder


def open_log(path: Path, *, executions_dir: Path) -> int:
    """Open the log at ``path`` for reading; returns a file descriptor (the caller
    closes it with ``os.close``).

    Raises ``LogRefused`` for a symbolic link, anything but a regular file, a file
    with more than one hard link, and a file whose real path is outside
    ``executions_dir``; ``FileNotFoundError`` when there is no file;
    ``PermissionError`` / ``OSError`` as ``os.open`` does. Nothing is opened before
    the checks that can be made with ``lstat`` and ``realpath`` pass, and the open
    descriptor is checked again (the file can be swapped in between).
    """
    name = literal(path.name)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise LogRefused(f"{name} is a symbolic link (to {literal(os.readlink(path))}): "
                         "not followed")
    kind = _kind(info.st_mode)
    if kind is not None or not stat.S_ISREG(info.st_mode):
        raise LogRefused(f"{name} is {kind or 'not a regular file'}, not a log file")
    if info.st_nlink != 1:
        raise LogRefused(f"{name} has {info.st_nlink} hard links: not read "
                         "(a log the service writes has one)")
    folder = os.path.realpath(executions_dir)
    if not _inside(os.path.realpath(path), folder):
        raise LogRefused(f"{name} is outside the store's executions folder: not read")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link swapped in after lstat
            raise LogRefused(f"{name} became a symbolic link: not followed") from None
        raise
    opened = os.fstat(fd)
    if stat.S_ISREG(opened.st_mode) and opened.st_nlink != 1:
        _NEVER_CLOSED.append(fd)
        raise LogRefused(f"{name} became a file with {opened.st_nlink} hard links: not read")
    real = _fd_path(fd) or os.path.realpath(path)
    if not stat.S_ISREG(opened.st_mode) or not _inside(real, folder):
        os.close(fd)
        raise LogRefused(f"{name} was replaced while it was opened: not read")
    return fd


def _fd_path(fd: int) -> str | None:
    """The path the kernel has for an open descriptor (Linux ``/proc/self/fd``)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _read_tail(fd: int, size: int, max_bytes: int) -> tuple[bytes, int]:
    """The last ``max_bytes`` of a file of ``size`` bytes, and where they start."""
    start = max(0, size - max_bytes)
    chunks, offset = [], start
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 20), offset)
        if not chunk:  # truncated while read (the service rewrites whole)
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks), start


def read_log(path: Path, *, executions_dir: Path | None = None,
             max_bytes: int = DEFAULT_MAX_BYTES, ended: bool = False) -> LogRead:
    """Read the last ``max_bytes`` bytes of the log at ``path``, opened with
    ``open_log``. Never raises for a file that is missing, refused or unreadable:
    ``missing`` says why instead.

    ``executions_dir`` is the store's ``executions/`` folder (default: two levels up
    from ``path``, where the store's layout puts it). ``ended`` says the step will
    not be saved again, so a missing file will never come.
    """
    name = literal(path.name)
    try:
        fd = open_log(path, executions_dir=executions_dir or path.parent.parent)
    except FileNotFoundError:
        return LogRead((), missing=(f"No log file: {NEVER_WRITTEN}\n(a step that printed "
                                    "nothing has none either)") if ended else NOT_ON_DISK_YET)
    except LogRefused as exc:
        return LogRead((), missing=str(exc))
    except PermissionError:
        return LogRead((), missing=f"cannot read {name}: permission denied")
    except OSError as exc:
        return LogRead((), missing=f"cannot read {name}: {exc.strerror or exc}")
    try:
        info = os.fstat(fd)
        data, skipped = _read_tail(fd, info.st_size, max_bytes)
    except OSError as exc:
        return LogRead((), missing=f"cannot read {name}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    first_cut = False
    if skipped:
        cut = data.find(b"\n")
        if cut != -1 and cut + 1 < len(data):
            # Drop the partial first line: whole lines follow it.
            skipped += cut + 1
            data = data[cut + 1:]
        else:
            # One line longer than the window: keep its end, from a character start.
            first_cut = True
            lead = next((i for i in range(min(4, len(data))) if not 0x80 <= data[i] < 0xC0), 0)
            skipped += lead
            data = data[lead:]
    lines = decode(data).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return LogRead(tuple(lines), first_cut=first_cut, skipped_bytes=skipped,
                   size=info.st_size)


def log_version(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns) of the file at ``path`` itself (a link is not
    followed), without opening it; None when absent. A read is stale when this
    differs from what it was before the read."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)
