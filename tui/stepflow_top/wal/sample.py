"""One observation of a database's files (:class:`WalSample`), as the probe process
reads it, and its JSON wire format.

Pure data: nothing here opens a file. Format facts are in :mod:`.format`, lock facts
in :mod:`.locks`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .format import WAL_HEADER_SIZE, DbHeader, ShmHeader, WalHeader, live_wal_bytes
from .locks import Holder, ReadLock

__all__ = ["WalSample", "Holder", "ReadLock"]


@dataclass(frozen=True)
class WalSample:
    """One observation of a database's files, taken by the probe process.

    Times: ``monotonic`` (``time.monotonic()``, seconds, system-wide clock on Linux) and
    ``wall`` (``time.time()``, seconds since the epoch). Sizes in bytes, ``frames`` etc.
    in frames. Headers are ``None`` when the file is absent, too short or unreadable
    (the reason is in ``errors``). ``holders``: processes other than stepflow-top that
    have the database open (see :mod:`.locks`); ``locks_readable`` is False when no
    lock could be read (then ``holders`` says nothing).
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
    holders: tuple[Holder, ...] = ()
    locks_readable: bool = False

    # -- who has it open ------------------------------------------------------------
    @property
    def writer_attached(self) -> bool | None:
        """Whether a process other than stepflow-top has the database open.

        In WAL mode every open connection keeps a shared fcntl lock on ``-shm`` byte 128
        (os_unix.c ``UNIX_SHM_DMS``) and on the database file's SHARED range for as
        long as it is open, and the kernel drops a process's locks when it exits, even
        by SIGKILL (fs/locks.c ``locks_remove_posix``). So: True when a holder remains;
        False when none does (a closed store has no ``-shm`` at all; a writer in
        ``locking_mode=EXCLUSIVE`` has none either but still locks the database file).
        None when the locks could not be read, or when the database header does not say
        WAL: a rollback-journal connection holds no lock between transactions, so an
        idle writer cannot be told from no writer.
        """
        if not self.locks_readable or self.wal_mode is not True:
            return None
        return bool(self.holders)

    @property
    def writer_pids(self) -> tuple[int, ...]:
        """Pids of :attr:`holders`, sorted (0: a process outside this pid namespace;
        -1: an OFD lock with no owning process)."""
        return tuple(sorted({h.pid for h in self.holders}))

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


# -- wire format ----------------------------------------------------------------------


def _sample_to_wire(s: WalSample) -> dict[str, Any]:
    d = asdict(s)
    d["read_locks"] = [[lk.pid, lk.slot] for lk in s.read_locks]
    d["holders"] = [[h.pid, h.command] for h in s.holders]
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
        holders=tuple(Holder(pid=p, command=c) for p, c in d.get("holders", ())),
        locks_readable=bool(d.get("locks_readable", False)),
    )
