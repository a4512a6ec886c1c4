"""The probe: reads the ``-wal``, ``-shm`` and database headers, and who holds ``-shm``
read locks, **in a separate process**.

Why a process: POSIX drops *all* of a process's fcntl locks on a file when the process
closes *any* descriptor of that file. A process that holds SQLite connections and
``open()``s the database or its ``-shm`` (even read-only, even briefly) loses its read
locks, and a writer's checkpoint can then run underneath its live snapshot
(SQLITE_WAL.md §3). So the process that holds connections uses :class:`Probe`, which
talks to a long-lived child ``python -m stepflow_top.wal.probe``: one request per line on
its stdin (a database path, or a JSON string), one JSON answer per line on its stdout.

Sources: lock byte offsets from wal.c (``WAL_READ_LOCK(I) = 3+I``) and os_unix.c
(``UNIX_SHM_BASE = 120``); ``/proc/locks`` format from the Linux kernel's
``fs/locks.c`` (``lock_get_status``: ``MAJ:MIN:INODE`` with major/minor in hex).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .format import (
    DB_HEADER_SIZE,
    SHM_HEADER_SIZE,
    SHM_READ_LOCK_BYTES,
    WAL_HEADER_SIZE,
    DbHeader,
    ShmHeader,
    TornRead,
    WalFormatError,
    WalHeader,
    live_wal_bytes,
    parse_db_header,
    parse_shm_header,
    parse_wal_header,
)

__all__ = ["ReadLock", "WalSample", "Probe", "ProbeError", "sample_once", "read_sample"]

_TORN_RETRIES = 8


class ProbeError(RuntimeError):
    """The probe subprocess could not be started, died, answered garbage or timed out."""


@dataclass(frozen=True)
class ReadLock:
    """A shared fcntl lock held by ``pid`` on the ``-shm`` byte of read mark ``slot``
    (0..4; byte ``123 + slot``). Slot 0 means "reading the database file only" and
    never stops a checkpoint; slots 1..4 pin the WAL at ``read_marks[slot]``."""

    pid: int
    slot: int


@dataclass(frozen=True)
class WalSample:
    """One observation of a database's files, taken by the probe process.

    Times: ``monotonic`` (``time.monotonic()``, seconds, system-wide clock on Linux) and
    ``wall`` (``time.time()``, seconds since the epoch). Sizes in bytes, ``frames`` etc.
    in frames. Headers are ``None`` when the file is absent, too short or unreadable
    (the reason is in ``errors``).
    """

    db_path: str
    monotonic: float
    wall: float
    db_exists: bool
    db_size: int | None
    db_header: DbHeader | None
    wal_exists: bool
    wal_size: int | None
    wal_inode: int | None
    wal_header: WalHeader | None
    shm_exists: bool
    shm_header: ShmHeader | None
    read_locks: tuple[ReadLock, ...] = ()
    errors: tuple[str, ...] = ()

    # -- derived figures -------------------------------------------------------------
    @property
    def readers(self) -> tuple[int, ...]:
        """Pids holding any ``-shm`` read lock (slots 0..4), sorted."""
        return tuple(sorted({lock.pid for lock in self.read_locks}))

    @property
    def pinning_readers(self) -> tuple[int, ...]:
        """Pids holding read marks 1..4: readers that can stop a checkpoint."""
        return tuple(sorted({lock.pid for lock in self.read_locks if lock.slot > 0}))

    @property
    def frames(self) -> int | None:
        """``mxFrame`` from the ``-shm`` header (None when unknown); 0 when no -wal."""
        if self.shm_header is not None:
            return self.shm_header.frames
        return 0 if not self.wal_exists else None

    @property
    def backfilled(self) -> int | None:
        """``nBackfill``: frames already copied into the database (None when unknown)."""
        if self.shm_header is not None:
            return self.shm_header.backfilled
        return 0 if not self.wal_exists else None

    @property
    def pending(self) -> int | None:
        """Frames waiting for a checkpoint, ``frames - backfilled`` (None when unknown)."""
        if self.shm_header is not None:
            return self.shm_header.pending
        return 0 if not self.wal_exists else None

    @property
    def salt1(self) -> int | None:
        """Current salt-1: from the ``-shm`` header (right even after a TRUNCATE left a
        0-byte ``-wal``), else from the ``-wal`` header."""
        if self.shm_header is not None:
            return self.shm_header.salt1
        return self.wal_header.salt1 if self.wal_header is not None else None

    @property
    def salt2(self) -> int | None:
        """Current salt-2 (same sources as :attr:`salt1`)."""
        if self.shm_header is not None:
            return self.shm_header.salt2
        return self.wal_header.salt2 if self.wal_header is not None else None

    @property
    def checkpoint_seq(self) -> int | None:
        """The ``-wal`` header's checkpoint sequence (per writing connection)."""
        return self.wal_header.checkpoint_seq if self.wal_header is not None else None

    @property
    def page_size(self) -> int | None:
        """Page size in bytes (``-shm``, else ``-wal``, else database header)."""
        for h in (self.shm_header, self.wal_header, self.db_header):
            if h is not None and h.page_size:
                return h.page_size
        return None

    @property
    def page_count(self) -> int | None:
        """Database size in pages: ``nPage`` from ``-shm`` when the WAL is open (the file
        header lags until a checkpoint), else the database header's."""
        if self.shm_header is not None and self.shm_header.page_count:
            return self.shm_header.page_count
        return self.db_header.page_count if self.db_header is not None else None

    @property
    def freelist_count(self) -> int | None:
        """Freelist pages from the database file header (may lag in WAL mode)."""
        return self.db_header.freelist_count if self.db_header is not None else None

    @property
    def live_wal_bytes(self) -> int | None:
        """Bytes of the ``-wal`` used by the current cycle (0 when there is no -wal)."""
        if not self.wal_exists:
            return 0
        if self.shm_header is None or not self.page_size:
            return None
        if self.shm_header.frames == 0:
            return WAL_HEADER_SIZE if self.wal_size else 0
        return live_wal_bytes(self.shm_header.frames, self.page_size)

    @property
    def wal_mode(self) -> bool | None:
        """What the database header says (read/write versions 2 = WAL), None if unread."""
        return self.db_header.wal_mode if self.db_header is not None else None

    # -- JSON for --once ---------------------------------------------------------------
    def database_dict(self) -> dict[str, Any]:
        """``{"path", "size_bytes", "page_size", "page_count", "freelist_count"}``."""
        return {
            "path": self.db_path,
            "size_bytes": self.db_size,
            "page_size": self.page_size,
            "page_count": self.page_count,
            "freelist_count": self.freelist_count,
        }

    def wal_dict(self) -> dict[str, Any]:
        """``{"exists", "size_bytes", "frames", "backfilled", "pending", "checkpoint_seq",
        "salt1", "readers"}``; figures are None when the ``-wal`` is absent."""
        if not self.wal_exists:
            return {
                "exists": False, "size_bytes": None, "frames": None, "backfilled": None,
                "pending": None, "checkpoint_seq": None, "salt1": None,
                "readers": list(self.readers),
            }
        return {
            "exists": True,
            "size_bytes": self.wal_size,
            "frames": self.frames,
            "backfilled": self.backfilled,
            "pending": self.pending,
            "checkpoint_seq": self.checkpoint_seq,
            "salt1": self.salt1,
            "readers": list(self.readers),
        }

    def to_json(self) -> dict[str, Any]:
        """The whole sample as JSON-friendly dicts (the probe's wire format)."""
        return _sample_to_wire(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "WalSample":
        """Rebuild a sample from :meth:`to_json` output. Raises ``KeyError`` /
        ``TypeError`` on malformed input."""
        return _sample_from_wire(d)


# --------------------------------------------------------------------------------------
# Child side: reading the files (only ever run in the probe process).
# --------------------------------------------------------------------------------------


def _read_prefix(path: str, n: int) -> tuple[os.stat_result, bytes]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        return st, os.pread(fd, n, 0)
    finally:
        os.close(fd)


def _parse_proc_locks(text: str, dev: tuple[int, int] | None, ino: int) -> list[ReadLock]:
    """Shared POSIX/OFD locks from ``/proc/locks`` text on ``ino`` (and ``dev``
    (major, minor) when given) covering the read-mark bytes 123..127."""
    out: list[ReadLock] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8 or parts[1] == "->":
            continue  # malformed, or a blocked waiter (not a holder)
        kind, rw, pid_s, ident, start_s, end_s = parts[1], parts[3], parts[4], parts[5], parts[6], parts[7]
        if kind not in ("POSIX", "OFDLCK") or rw != "READ":
            continue
        try:
            maj_s, min_s, ino_s = ident.split(":")
            if int(ino_s) != ino:
                continue
            if dev is not None and (int(maj_s, 16), int(min_s, 16)) != dev:
                continue
            pid = int(pid_s)
            start = int(start_s)
            end = (1 << 63) if end_s == "EOF" else int(end_s)
        except ValueError:
            continue
        for slot, byte in enumerate(SHM_READ_LOCK_BYTES):
            if start <= byte <= end:
                out.append(ReadLock(pid=pid, slot=slot))
    return out


_FLOCK_LINUX = "hhqqi4x"  # struct flock on Linux 64-bit: type, whence, start, len, pid
_FLOCK_BSD = "qqihh"  # macOS / BSD: start, len, pid, type, whence


def _getlk_read_locks(fd: int) -> list[ReadLock]:
    """Fallback: ``fcntl(F_GETLK)`` for a write lock on each read-mark byte. Reports at
    most one holder per byte (the kernel returns one conflicting lock)."""
    out: list[ReadLock] = []
    linux = sys.platform.startswith("linux")
    for slot, byte in enumerate(SHM_READ_LOCK_BYTES):
        if linux:
            req = struct.pack(_FLOCK_LINUX, fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
        else:
            req = struct.pack(_FLOCK_BSD, byte, 1, 0, fcntl.F_WRLCK, os.SEEK_SET)
        try:
            res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
        except OSError:
            continue
        if linux:
            ltype, _w, _s, _l, pid = struct.unpack(_FLOCK_LINUX, res)
        else:
            _s, _l, pid, ltype, _w = struct.unpack(_FLOCK_BSD, res)
        if ltype == fcntl.F_RDLCK and pid > 0:
            out.append(ReadLock(pid=pid, slot=slot))
    return out


def _read_locks(shm_path: str, st: os.stat_result) -> list[ReadLock]:
    me = os.getpid()
    locks: list[ReadLock] | None = None
    try:
        with open("/proc/locks", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        text = None
    if text is not None:
        locks = _parse_proc_locks(text, (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino)
        if not locks:
            # On overlay-like filesystems stat's st_dev differs from the device the
            # kernel shows; ask the kernel whether any lock exists before matching by
            # inode alone.
            fd = os.open(shm_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                confirmed = _getlk_read_locks(fd)
            finally:
                os.close(fd)
            if confirmed:
                locks = _parse_proc_locks(text, None, st.st_ino) or confirmed
    else:
        fd = os.open(shm_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            locks = _getlk_read_locks(fd)
        finally:
            os.close(fd)
    uniq = sorted({(lk.pid, lk.slot) for lk in locks if lk.pid != me})
    return [ReadLock(pid=p, slot=s) for p, s in uniq]


def read_sample(db_path: str) -> WalSample:
    """Read one :class:`WalSample` for ``db_path`` **in this process**.

    Opens the database file, ``-wal`` and ``-shm`` read-only: call it only in a process
    that holds no SQLite connection to that database (the probe child does). Never
    raises for missing or malformed files: the problems go into ``errors``.
    """
    path = os.path.abspath(db_path)
    errors: list[str] = []
    mono, wall = time.monotonic(), time.time()

    db_exists, db_size, db_header = False, None, None
    try:
        st, head = _read_prefix(path, DB_HEADER_SIZE)
        db_exists, db_size = True, st.st_size
        if st.st_size == 0:
            errors.append("database file is empty")
        else:
            db_header = parse_db_header(head)
    except FileNotFoundError:
        pass
    except (OSError, WalFormatError) as e:
        db_exists = db_exists or os.path.exists(path)
        errors.append(f"database header: {e}")

    wal_exists, wal_size, wal_inode, wal_header = False, None, None, None
    wal_path = path + "-wal"
    for _ in range(_TORN_RETRIES):
        try:
            st, head = _read_prefix(wal_path, WAL_HEADER_SIZE)
        except FileNotFoundError:
            wal_exists, wal_size, wal_inode, wal_header = False, None, None, None
            break
        except OSError as e:
            errors.append(f"-wal: {e}")
            break
        wal_exists, wal_size, wal_inode = True, st.st_size, st.st_ino
        if len(head) < WAL_HEADER_SIZE:
            wal_header = None  # empty (fresh or after TRUNCATE)
            break
        try:
            wal_header = parse_wal_header(head)
        except WalFormatError as e:
            errors.append(f"-wal header: {e}")
            wal_header = None
            break
        if wal_header.checksum_valid:
            break
    else:
        errors.append("-wal header checksum does not match")

    shm_exists, shm_header, locks = False, None, []
    shm_path = path + "-shm"
    try:
        for attempt in range(_TORN_RETRIES):
            st, head = _read_prefix(shm_path, SHM_HEADER_SIZE)
            shm_exists = True
            try:
                shm_header = parse_shm_header(head)
                break
            except TornRead as e:
                if attempt == _TORN_RETRIES - 1:
                    errors.append(f"-shm header: {e} (after {_TORN_RETRIES} reads)")
                elif attempt >= 2:
                    time.sleep(0.0005)
            except WalFormatError as e:
                if len(head) >= SHM_HEADER_SIZE and any(head[:48]):
                    errors.append(f"-shm header: {e}")
                break  # empty / uninitialised wal-index: not an error
        locks = _read_locks(shm_path, st)
    except FileNotFoundError:
        pass
    except OSError as e:
        errors.append(f"-shm: {e}")

    return WalSample(
        db_path=path, monotonic=mono, wall=wall,
        db_exists=db_exists, db_size=db_size, db_header=db_header,
        wal_exists=wal_exists, wal_size=wal_size, wal_inode=wal_inode, wal_header=wal_header,
        shm_exists=shm_exists, shm_header=shm_header,
        read_locks=tuple(locks), errors=tuple(errors),
    )


# --------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------


def _sample_to_wire(s: WalSample) -> dict[str, Any]:
    d = asdict(s)
    d["read_locks"] = [[lk.pid, lk.slot] for lk in s.read_locks]
    return d


def _tuples(d: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
    if d is None:
        return None
    d = dict(d)
    for k in keys:
        d[k] = tuple(d[k])
    return d


def _sample_from_wire(d: dict[str, Any]) -> WalSample:
    wal = d.get("wal_header")
    shm = _tuples(d.get("shm_header"), "frame_checksum", "checksum", "read_marks")
    db = d.get("db_header")
    return WalSample(
        db_path=d["db_path"], monotonic=d["monotonic"], wall=d["wall"],
        db_exists=d["db_exists"], db_size=d["db_size"],
        db_header=DbHeader(**db) if db else None,
        wal_exists=d["wal_exists"], wal_size=d["wal_size"], wal_inode=d.get("wal_inode"),
        wal_header=WalHeader(**wal) if wal else None,
        shm_exists=d["shm_exists"], shm_header=ShmHeader(**shm) if shm else None,
        read_locks=tuple(ReadLock(pid=p, slot=s) for p, s in d.get("read_locks", ())),
        errors=tuple(d.get("errors", ())),
    )


def _serve(stdin: Any, stdout: Any) -> None:
    """The child's loop: one path per line in, one JSON line out; ends at EOF."""
    for raw in stdin:
        line = raw.rstrip("\n")
        if not line:
            continue
        try:
            path = json.loads(line) if line.startswith('"') else line
            reply: dict[str, Any] = {"ok": True, "sample": _sample_to_wire(read_sample(path))}
        except Exception as e:  # never die on one bad request
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


# --------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the directory holding stepflow_top/
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Probe:
    """Parent-side handle on the long-lived probe subprocess.

    Use as a context manager or call :meth:`close`. The child starts on the first
    :meth:`sample` and is restarted once if it died. Thread-safe (one request at a time).
    ``timeout_s`` bounds each answer (seconds). The parent never opens the database,
    ``-wal`` or ``-shm`` itself.
    """

    def __init__(self, timeout_s: float = 5.0, python: str | None = None) -> None:
        self.timeout_s = timeout_s
        self._python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """Pid of the running child, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(
                # -P: do not put the current directory first on sys.path (3.11+).
                [self._python, "-P", "-m", "stepflow_top.wal.probe"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=_child_env(), close_fds=True,
            )
        except OSError as e:
            raise ProbeError(f"cannot start the probe process: {e}") from e
        self._proc, self._buf = proc, b""
        return proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for f in (proc.stdin, proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _readline(self, proc: subprocess.Popen[bytes], deadline: float) -> bytes:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProbeError(f"the probe did not answer within {self.timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ProbeError("the probe process exited")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _ask(self, path: str) -> dict[str, Any]:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        if proc is None:
            self._kill()
            proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write((json.dumps(path) + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ProbeError(f"the probe process is gone: {e}") from e
        return json.loads(self._readline(proc, time.monotonic() + self.timeout_s))

    def sample(self, db_path: str | os.PathLike[str]) -> WalSample:
        """Take one sample of ``db_path`` (made absolute). Costs the child about a
        millisecond. Raises :class:`ProbeError` when the child cannot answer (after one
        restart) or reports an internal error."""
        path = os.path.abspath(os.fspath(db_path))
        with self._lock:
            if self._closed:
                raise ProbeError("the probe is closed")
            last: Exception | None = None
            for _ in range(2):
                try:
                    reply = self._ask(path)
                    break
                except (ProbeError, ValueError) as e:  # ValueError: bad JSON
                    last = e
                    self._kill()
            else:
                raise ProbeError(str(last)) from last
        if not reply.get("ok"):
            raise ProbeError(f"the probe failed: {reply.get('error')}")
        try:
            return WalSample.from_json(reply["sample"])
        except (KeyError, TypeError) as e:
            raise ProbeError(f"the probe answered an unexpected sample: {e}") from e

    def close(self) -> None:
        """Stop the child (closing its stdin ends it) and wait for it. Idempotent."""
        with self._lock:
            self._closed = True
            self._kill()


def sample_once(db_path: str | os.PathLike[str], timeout_s: float = 5.0) -> WalSample:
    """Start a probe, take one sample of ``db_path``, stop it (for ``--once``).
    Raises :class:`ProbeError` like :meth:`Probe.sample`."""
    with Probe(timeout_s=timeout_s) as probe:
        return probe.sample(db_path)


def main() -> None:
    """Entry point of ``python -m stepflow_top.wal.probe``."""
    try:
        _serve(sys.stdin, sys.stdout)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


if __name__ == "__main__":
    main()
