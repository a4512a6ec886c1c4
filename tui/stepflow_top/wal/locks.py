"""Who holds fcntl locks on a database's files: read marks, and the processes that have
the database open.

Run only in the probe child (:mod:`.probe`): the ``F_GETLK`` fallback opens the
database file and ``-shm``, which would drop the fcntl locks of a process holding SQLite
connections (SQLITE_WAL.md §3).

Sources:

* ``/proc/locks`` lines, from the Linux kernel's ``fs/locks.c`` ``lock_get_status``:
  ``N: POSIX  ADVISORY  READ  PID MAJ:MIN:INODE START END`` with major/minor in hex and
  END ``EOF`` for "to the end of the file"; a blocked waiter is prefixed ``->``. PID is
  ``locks_translate_pid``: **-1** for an open-file-description (``OFDLCK``) lock, which
  no process owns, and **0** when the owner lives in a pid namespace that the reading
  ``/proc`` cannot see (a process outside this container; seen here with the probe
  run under ``unshare -p -f --mount-proc``, tests/functional/test_wal_locks.py).
* ``fcntl(F_GETLK)`` (fcntl(2)): reports *one* lock that would conflict, with its pid
  translated the same way.
* What SQLite locks: every open WAL connection keeps a shared lock on ``-shm`` byte 128
  (``UNIX_SHM_DMS``, os_unix.c) and on the database file's SHARED range (sqliteInt.h
  ``SHARED_FIRST``), read marks are bytes 123..127 (wal.c ``WAL_READ_LOCK``); see
  :mod:`.format` for the constants.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from .files import open_regular
from .format import SHM_READ_LOCK_BYTES

__all__ = [
    "ReadLock",
    "Holder",
    "LockRecord",
    "LockReport",
    "parse_proc_locks",
    "read_marks",
    "is_monitor",
    "file_locks",
    "LockWatch",
]

_EOF = (1 << 63) - 1


@dataclass(frozen=True)
class ReadLock:
    """A shared fcntl lock held by ``pid`` on the ``-shm`` byte of read mark ``slot``
    (0..4; byte ``123 + slot``). Slot 0 means "reading the database file only" and
    never stops a checkpoint; slots 1..4 pin the WAL at ``read_marks[slot]``."""

    pid: int
    slot: int


@dataclass(frozen=True)
class Holder:
    """A process that holds a POSIX or OFD lock on the database file or its ``-shm``:
    it has the database open.

    ``pid`` is as ``/proc/locks`` shows it: 0 means a process in another pid namespace
    (outside this container), -1 an OFD lock, which belongs to an open file, not a
    process. ``command`` is ``/proc/PID/cmdline`` joined with spaces, None when it
    could not be read (always for pids 0 and -1).
    """

    pid: int
    command: str | None = None

    @property
    def outside_namespace(self) -> bool:
        """True when the holder is a process this pid namespace cannot see (pid 0)."""
        return self.pid == 0


@dataclass(frozen=True)
class LockRecord:
    """One held (not waited-for) POSIX/OFD lock from ``/proc/locks``. ``dev`` is
    (major, minor); ``start``/``end`` are byte offsets, ``end`` inclusive."""

    pid: int
    dev: tuple[int, int]
    ino: int
    shared: bool
    start: int
    end: int

    def covers(self, byte: int) -> bool:
        """True when the lock covers file offset ``byte``."""
        return self.start <= byte <= self.end


@dataclass(frozen=True)
class LockReport:
    """Locks found on the database file and ``-shm``.

    ``holders``: processes with the database open, after exclusion (see
    :func:`file_locks`), sorted by pid. ``read_locks``: read marks on ``-shm`` (only
    the probe's own pid left out). ``readable``: False when neither ``/proc/locks`` nor
    ``F_GETLK`` could tell who holds locks.
    """

    holders: tuple[Holder, ...] = ()
    read_locks: tuple[ReadLock, ...] = ()
    readable: bool = False


def parse_proc_locks(text: str) -> list[LockRecord]:
    """The held POSIX and OFD locks in ``/proc/locks`` text (``FLOCK``, leases and
    blocked waiters are left out; malformed lines are skipped)."""
    out: list[LockRecord] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8 or parts[1] == "->":
            continue
        kind, rw, pid_s, ident, start_s, end_s = (
            parts[1], parts[3], parts[4], parts[5], parts[6], parts[7])
        if kind not in ("POSIX", "OFDLCK") or rw not in ("READ", "WRITE"):
            continue
        try:
            maj_s, min_s, ino_s = ident.split(":")
            out.append(LockRecord(
                pid=int(pid_s), dev=(int(maj_s, 16), int(min_s, 16)), ino=int(ino_s),
                shared=(rw == "READ"), start=int(start_s),
                end=_EOF if end_s == "EOF" else int(end_s),
            ))
        except ValueError:
            continue
    return out


def read_marks(records: Iterable[LockRecord]) -> list[ReadLock]:
    """Read marks held in ``records`` (already narrowed to one ``-shm``): a shared lock
    covering byte ``123 + slot``."""
    return [ReadLock(pid=r.pid, slot=slot)
            for r in records if r.shared
            for slot, byte in enumerate(SHM_READ_LOCK_BYTES) if r.covers(byte)]


# -- F_GETLK ---------------------------------------------------------------------------
_FLOCK_LINUX = "hhqqi4x"  # struct flock on Linux 64-bit: type, whence, start, len, pid
_FLOCK_BSD = "qqihh"  # macOS / BSD: start, len, pid, type, whence


def _getlk(fd: int, start: int, length: int) -> tuple[int, int] | None:
    """``fcntl(F_GETLK)`` for a write lock on ``length`` bytes from ``start`` (0 = to
    the end of the file): ``(type, pid)`` of one lock in the way, or None when there is
    none. Raises ``OSError`` when the call fails."""
    linux = sys.platform.startswith("linux")
    if linux:
        req = struct.pack(_FLOCK_LINUX, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    else:
        req = struct.pack(_FLOCK_BSD, start, length, 0, fcntl.F_WRLCK, os.SEEK_SET)
    res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
    if linux:
        ltype, _w, _s, _l, pid = struct.unpack(_FLOCK_LINUX, res)
    else:
        _s, _l, pid, ltype, _w = struct.unpack(_FLOCK_BSD, res)
    return None if ltype == fcntl.F_UNLCK else (ltype, pid)


def _getlk_file(path: str, ranges: list[tuple[int, int]]) -> list[tuple[int, int] | None]:
    """:func:`_getlk` on each (start, length) range of ``path``, in order. Raises
    ``OSError``."""
    fd = open_regular(path, "a file SQLite locks")
    try:
        return [_getlk(fd, start, length) for start, length in ranges]
    finally:
        os.close(fd)


# -- who is it -------------------------------------------------------------------------
def _argv(pid: int) -> list[str] | None:
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(65536)
    except OSError:
        return None
    if not raw:
        return None  # a kernel thread, or a process that is exiting
    return [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]


_PYTHON_OPTIONS_WITH_VALUE = {"-W", "-X", "--check-hash-based-pycs"}


def is_monitor(argv: list[str]) -> bool:
    """True when ``argv`` is a stepflow-top *monitor*: the ``stepflow-top`` console
    script, or Python running ``-m stepflow_top`` or any ``stepflow_top.`` module.
    Writers are not monitors: ``-m stepflow_top.demo.writer`` and ``stepflow-top
    --demo-writer`` (also abbreviated, as argparse allows) stand in for the StepFlow
    service in tests and ``--demo``. Anything else is not a monitor either."""
    if not argv:
        return False
    name = os.path.basename(argv[0])
    if name == "stepflow-top":
        return not _asks_for_writer(argv[1:])
    if not name.startswith(("python", "pypy")):
        return False
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m" or (arg.startswith("-m") and not arg.startswith("--")):
            module = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else arg[2:]
            rest = argv[i + 2:] if arg == "-m" else argv[i + 1:]
            if module == "stepflow_top.demo.writer":
                return False
            if module == "stepflow_top" or module.startswith("stepflow_top."):
                return not _asks_for_writer(rest)
            return False
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            i += 2
            continue
        if not arg.startswith("-") or arg in ("-c", "-"):
            # A script (the console script run by its interpreter) or code: no -m.
            return os.path.basename(arg) == "stepflow-top" and not _asks_for_writer(argv[i + 1:])
        i += 1
    return False


def _asks_for_writer(args: list[str]) -> bool:
    return any(a.startswith("--demo-") for a in args)


# -- putting it together ---------------------------------------------------------------
def _read_proc_locks() -> str | None:
    try:
        with open("/proc/locks", "rb") as f:
            return f.read().decode("ascii", "replace")
    except OSError:
        return None


def _records_of(
    records: list[LockRecord], path: str, st: os.stat_result
) -> list[LockRecord] | None:
    """The records on the file ``st`` describes; None when ``/proc/locks`` cannot be
    matched to it. On overlay-like filesystems ``st_dev`` (and with ``xino`` even
    ``st_ino``) differs from what the kernel shows: when nothing matches device and
    inode, ``F_GETLK`` says whether the file has any lock before records are matched
    by inode alone."""
    exact = [r for r in records if r.ino == st.st_ino
             and r.dev == (os.major(st.st_dev), os.minor(st.st_dev))]
    if exact:
        return exact
    try:
        [locked] = _getlk_file(path, [(0, 0)])
    except OSError:
        return None
    if locked is None:
        return []
    return [r for r in records if r.ino == st.st_ino] or None


def file_locks(
    db: tuple[str, os.stat_result] | None,
    shm: tuple[str, os.stat_result] | None,
    exclude: Iterable[int] = (),
) -> LockReport:
    """Who holds locks on the database file and its ``-shm``.

    ``db`` / ``shm``: (path, stat result) of each regular file, None when absent.
    ``exclude``: pids that are stepflow-top itself (the requesting process); the
    calling process's own pid and holders whose command line :func:`is_monitor` are
    left out too. Reads ``/proc/locks``; without it (or when it cannot be matched to a
    file) asks ``F_GETLK``, which names only one holder per query: when every holder
    it names is left out, others may hide behind them and ``readable`` is False.
    Never raises.
    """
    me = os.getpid()
    skip = set(exclude) | {me}
    text = _read_proc_locks()
    records = parse_proc_locks(text) if text is not None else []
    pids: set[int] = set()
    named_by_getlk: set[int] = set()
    reads: list[ReadLock] = []
    readable = True
    for target in (db, shm):
        if target is None:
            continue
        path, st = target
        mine = _records_of(records, path, st) if text is not None else None
        if mine is not None:
            pids.update(r.pid for r in mine)
            if target is shm:
                reads = read_marks(mine)
            continue
        try:
            [hit] = _getlk_file(path, [(0, 0)])
            if target is shm:
                reads = _getlk_read_marks(path)
        except OSError:
            readable = False
            continue
        if hit is not None:
            named_by_getlk.add(hit[1])
    pids |= named_by_getlk
    holders = []
    for pid in sorted(pids - skip):
        argv = _argv(pid)
        if argv is not None and is_monitor(argv):
            continue
        holders.append(Holder(pid, " ".join(argv) if argv else None))
    if named_by_getlk and not holders:
        readable = False
    uniq = sorted({(lk.pid, lk.slot) for lk in reads if lk.pid != me})
    return LockReport(
        holders=tuple(holders),
        read_locks=tuple(ReadLock(pid=p, slot=s) for p, s in uniq),
        readable=readable,
    )


def _getlk_read_marks(shm_path: str) -> list[ReadLock]:
    """Read marks by ``F_GETLK``: at most one holder per read-mark byte."""
    hits = _getlk_file(shm_path, [(byte, 1) for byte in SHM_READ_LOCK_BYTES])
    return [ReadLock(pid=hit[1], slot=slot) for slot, hit in enumerate(hits)
            if hit is not None and hit[0] == fcntl.F_RDLCK and hit[1] > 0]


LOCKS_MAX_AGE = 2.0  # seconds a /proc/locks reading is reused while F_GETLK sees no change


class LockWatch:
    """:func:`file_locks`, with ``/proc/locks`` read again only when it may say
    something new.

    Reading ``/proc/locks`` takes the kernel's file-lock semaphore for writing
    (fs/locks.c ``locks_start``: ``percpu_down_write(&file_rwsem)``), which waits for
    an RCU grace period unless another reading just did: measured here, 5-8 ms after
    50 ms or more of quiet against 0.02 ms back to back, and the probe's answer waits
    for it on every refresh. ``F_GETLK`` takes no such semaphore. So a reading is
    reused while the files are the same (device, inode), the same pids are left out,
    ``F_GETLK`` finds the same lock in the way on the database file, on ``-shm`` and
    on each read-mark byte, and it is younger than ``max_age`` seconds: a service that
    starts, stops or begins a read transaction is mostly seen at once, and any other
    change within ``max_age``. Run only in the probe child, like :func:`file_locks`.
    """

    def __init__(self, max_age: float = LOCKS_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._last: tuple[object, float, LockReport] | None = None

    def report(
        self,
        db: tuple[str, os.stat_result] | None,
        shm: tuple[str, os.stat_result] | None,
        exclude: Iterable[int] = (),
    ) -> LockReport:
        """Who holds locks on ``db`` and ``shm`` (arguments as for :func:`file_locks`),
        from ``/proc/locks`` when the reading before may be out of date. Never raises."""
        seen = _fingerprint(db, shm, exclude)
        now = self.clock()
        if self._last is not None and seen is not None:
            last_seen, read_at, report = self._last
            if last_seen == seen and now - read_at < self.max_age:
                return report
        report = file_locks(db, shm, exclude)
        self._last = (seen, now, report)
        return report


def _fingerprint(db: tuple[str, os.stat_result] | None,
                 shm: tuple[str, os.stat_result] | None, exclude: Iterable[int]) -> object:
    """What ``F_GETLK`` sees on the files (see :class:`LockWatch`); None when it
    cannot be asked (then nothing is reused)."""
    seen: list[object] = [tuple(sorted(exclude))]
    try:
        for target, ranges in ((db, [(0, 0)]),
                               (shm, [(0, 0)] + [(b, 1) for b in SHM_READ_LOCK_BYTES])):
            if target is None:
                seen.append(None)
                continue
            path, st = target
            seen.append((st.st_dev, st.st_ino, tuple(_getlk_file(path, ranges))))
    except OSError:
        return None
    return tuple(seen)
