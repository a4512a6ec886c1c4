"""The probe: reads the ``-wal``, ``-shm`` and database headers, and who holds locks on
the database and its ``-shm``, **in a separate process**.

Why a process: POSIX drops *all* of a process's fcntl locks on a file when the process
closes *any* descriptor of that file. A process that holds SQLite connections and
``open()``s the database or its ``-shm`` (even read-only, even briefly) loses its read
locks, and a writer's checkpoint can then run underneath its live snapshot
(SQLITE_WAL.md §3). So the process that holds connections uses :class:`Probe`, which
talks to a long-lived child ``python -m stepflow_top.wal.probe``: one request per line on
its stdin, one JSON answer per line on its stdout. A request is a database path, a JSON
string holding one, or a JSON object ``{"path": PATH, "exclude": [PID, ...]}`` naming
the pids that are stepflow-top itself (see :func:`.locks.file_locks`).

The child opens only regular files, without blocking (``O_NONBLOCK``): a FIFO or device
planted at one of the paths is reported in ``errors``, never waited on or read.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .files import NotRegular, open_regular
from .format import (
    DB_HEADER_SIZE,
    SHM_HEADER_SIZE,
    WAL_HEADER_SIZE,
    TornRead,
    WalFormatError,
    parse_db_header,
    parse_shm_header,
    parse_wal_header,
)
from .locks import Holder, LockWatch, ReadLock, file_locks
from .sample import WalSample

__all__ = [
    "ReadLock", "Holder", "WalSample", "Probe", "ProbeError", "sample_once", "read_sample",
    "parse_request",
]

_TORN_RETRIES = 8


class ProbeError(RuntimeError):
    """The probe subprocess could not be started, died, answered garbage or timed out."""


def _read_prefix(path: str, n: int, what: str) -> tuple[os.stat_result, bytes]:
    """Stat and read the first ``n`` bytes of the regular file ``path``. Raises
    :class:`~.files.NotRegular`, ``FileNotFoundError`` or another ``OSError``."""
    fd = open_regular(path, what)
    try:
        return os.fstat(fd), os.pread(fd, n, 0)
    finally:
        os.close(fd)


_PINNED: dict[str, tuple[int, tuple[int, int]]] = {}  # path -> (O_PATH fd, (dev, ino))


def pin_identity(path: str, st: os.stat_result) -> None:
    """Keep an ``O_PATH`` descriptor on the database file the path names now, moving it
    when the path names another file. While it is held the inode number cannot be
    handed to a new file, so a database deleted and created again (an operator reset)
    always shows a new device/inode to ``os.stat`` in the monitor (DESIGN.md promise 8);
    without it, a filesystem reuses the freed number at once. Only in the probe child:
    it holds no SQLite connection, so no lock can be lost (SQLITE_WAL.md §3), and an
    ``O_PATH`` descriptor reads nothing. A deleted file's space is freed at the next
    sample, when the pin moves."""
    identity = (st.st_dev, st.st_ino)
    held = _PINNED.get(path)
    if held is not None and held[1] == identity:
        return
    if held is not None:
        os.close(held[0])
        del _PINNED[path]
    flag = getattr(os, "O_PATH", None)
    if flag is None:  # not Linux: inode reuse cannot be prevented here
        return
    try:
        fd = os.open(path, flag | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) == identity:
        _PINNED[path] = (fd, identity)
    else:  # replaced between the stat and the open: pin at the next sample
        os.close(fd)


def read_sample(db_path: str, exclude: Iterable[int] = (),
                watch: LockWatch | None = None) -> WalSample:
    """Read one :class:`WalSample` for ``db_path`` **in this process**.

    Opens the database file, ``-wal`` and ``-shm`` read-only: call it only in a process
    that holds no SQLite connection to that database (the probe child does).
    ``exclude``: pids of stepflow-top's own processes, left out of ``holders``.
    ``watch``: the child's :class:`.locks.LockWatch`, which reads ``/proc/locks`` only
    when it may say something new (None: read it now). Never raises for missing,
    malformed or non-regular files: the problems go into ``errors``.
    """
    path = os.path.abspath(db_path)
    errors: list[str] = []
    mono, wall = time.monotonic(), time.time()

    db_exists, db_size, db_header, db_stat = False, None, None, None
    try:
        st, head = _read_prefix(path, DB_HEADER_SIZE, "a database file")
        db_exists, db_size, db_stat = True, st.st_size, st
        pin_identity(path, st)
        if st.st_size == 0:
            errors.append("database file is empty")
        else:
            db_header = parse_db_header(head)
    except FileNotFoundError:
        pass
    except NotRegular as e:
        db_exists = True
        errors.append(str(e))
    except (OSError, WalFormatError) as e:
        db_exists = db_exists or os.path.lexists(path)
        errors.append(f"database header: {e}")

    wal_exists, wal_size, wal_inode, wal_header = False, None, None, None
    wal_path = path + "-wal"
    for _ in range(_TORN_RETRIES):
        try:
            st, head = _read_prefix(wal_path, WAL_HEADER_SIZE, "a WAL file")
        except FileNotFoundError:
            wal_exists, wal_size, wal_inode, wal_header = False, None, None, None
            break
        except NotRegular as e:
            wal_exists = True
            errors.append(str(e))
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

    shm_exists, shm_header, shm_stat = False, None, None
    shm_path = path + "-shm"
    try:
        for attempt in range(_TORN_RETRIES):
            st, head = _read_prefix(shm_path, SHM_HEADER_SIZE, "a wal-index (-shm) file")
            shm_exists, shm_stat = True, st
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
    except FileNotFoundError:
        pass
    except NotRegular as e:
        shm_exists = True
        errors.append(str(e))
    except OSError as e:
        errors.append(f"-shm: {e}")

    locks = (watch.report if watch is not None else file_locks)(
        (path, db_stat) if db_stat is not None else None,
        (shm_path, shm_stat) if shm_stat is not None else None,
        exclude,
    )
    return WalSample(
        db_path=path, monotonic=mono, wall=wall,
        db_exists=db_exists, db_size=db_size, db_header=db_header,
        wal_exists=wal_exists, wal_size=wal_size, wal_inode=wal_inode, wal_header=wal_header,
        shm_exists=shm_exists, shm_header=shm_header,
        read_locks=locks.read_locks, errors=tuple(errors),
        holders=locks.holders, locks_readable=locks.readable,
    )


# --------------------------------------------------------------------------------------
# Child side: the request loop
# --------------------------------------------------------------------------------------


def parse_request(line: str) -> tuple[str, list[int]]:
    """One request line: a bare path, a JSON string, or a JSON object ``{"path": str,
    "exclude": [int, ...]}``. Returns (path, pids to exclude). Raises ``ValueError``
    on a malformed request."""
    if not line.startswith(("{", '"')):
        return line, []
    req = json.loads(line)
    if isinstance(req, str):
        return req, []
    if not isinstance(req, dict) or not isinstance(req.get("path"), str):
        raise ValueError('a request object needs "path": a string')
    exclude = req.get("exclude", [])
    if not isinstance(exclude, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in exclude):
        raise ValueError('"exclude" must be a list of pids')
    return req["path"], exclude


def _serve(stdin: Any, stdout: Any) -> None:
    """The child's loop: one request per line in, one JSON line out; ends at EOF."""
    watch = LockWatch()
    for raw in stdin:
        line = raw.rstrip("\n")
        if not line:
            continue
        try:
            path, exclude = parse_request(line)
            reply: dict[str, Any] = {"ok": True, "sample": read_sample(path, exclude, watch).to_json()}
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

    def start(self) -> None:
        """Start the child now instead of at the first :meth:`sample`: its interpreter
        start (about 70 ms) then overlaps the caller's own. Raises :class:`ProbeError`
        when it cannot be started."""
        with self._lock:
            if self._proc is None and not self._closed:
                self._start()

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

    def _ask(self, request: str) -> dict[str, Any]:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        if proc is None:
            self._kill()
            proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write((request + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ProbeError(f"the probe process is gone: {e}") from e
        return json.loads(self._readline(proc, time.monotonic() + self.timeout_s))

    def sample(
        self, db_path: str | os.PathLike[str], exclude: Iterable[int] | None = None
    ) -> WalSample:
        """Take one sample of ``db_path`` (made absolute). ``exclude``: pids that are
        stepflow-top itself, left out of the sample's ``holders`` (default: this
        process). Costs the child about a millisecond. Raises :class:`ProbeError` when
        the child cannot answer (after one restart) or reports an internal error."""
        path = os.path.abspath(os.fspath(db_path))
        pids = sorted({os.getpid()} if exclude is None else set(exclude))
        request = json.dumps({"path": path, "exclude": pids})
        with self._lock:
            if self._closed:
                raise ProbeError("the probe is closed")
            last: Exception | None = None
            for _ in range(2):
                try:
                    reply = self._ask(request)
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


@contextmanager
def started_probes(count: int) -> Iterator[list[Probe]]:
    """``count`` probes whose children start now, for a caller about to import the
    rest of what it needs: their interpreters start (about 70 ms) meanwhile. A child
    that cannot start is tried again at its first sample, which says what failed. The
    probes are closed on leaving."""
    probes = [Probe() for _ in range(count)]
    try:
        for probe in probes:
            try:
                probe.start()
            except ProbeError:
                pass
        yield probes
    finally:
        for probe in probes:
            probe.close()


def sample_once(
    db_path: str | os.PathLike[str], timeout_s: float = 5.0, exclude: Iterable[int] | None = None
) -> WalSample:
    """Start a probe, take one sample of ``db_path``, stop it (for ``--once``).
    ``exclude`` as for :meth:`Probe.sample`. Raises :class:`ProbeError` like
    :meth:`Probe.sample`."""
    with Probe(timeout_s=timeout_s) as probe:
        return probe.sample(db_path, exclude)


def main() -> None:
    """Entry point of ``python -m stepflow_top.wal.probe``."""
    try:
        _serve(sys.stdin, sys.stdout)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


if __name__ == "__main__":
    main()
