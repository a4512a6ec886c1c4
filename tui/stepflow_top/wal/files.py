"""Opening a file that must be a regular file, without ever blocking on a trap.

A FIFO planted at a path makes a plain ``open()`` wait for a writer for ever; a device
(``/dev/zero``, a tape) reads endlessly or acts on open. So: ``stat`` first and refuse
anything but a regular file before opening it, then open with ``O_NONBLOCK`` (a FIFO
swapped in between neither blocks nor gets read) and check ``fstat`` again.

Opening the database file or its ``-shm`` drops the fcntl locks of a process that holds
SQLite connections (SQLITE_WAL.md §3): only the probe child uses this on those files.
"""

from __future__ import annotations

import os
import stat

__all__ = ["NotRegular", "open_regular"]

_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegular(OSError):
    """The path is not a regular file; the message says what it is, in one line:
    ``"stepflow.db is a FIFO, not a database file"``."""


def _check(path: str | os.PathLike[str], st: os.stat_result, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        raise NotRegular(f"{os.path.basename(path)} is {kind}, not {what}")


def open_regular(path: str | os.PathLike[str], what: str) -> int:
    """A read-only descriptor (``O_CLOEXEC``) of the regular file ``path`` (symlinks
    followed); the caller closes it. ``what`` names the expected file in the error
    ("a database file"). Raises :class:`NotRegular`, ``FileNotFoundError`` or another
    ``OSError``."""
    _check(path, os.stat(path), what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check(path, os.fstat(fd), what)
    except NotRegular:
        os.close(fd)
        raise
    return fd
