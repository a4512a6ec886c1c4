"""Pure parsers for the SQLite ``-wal`` header, the ``-shm`` wal-index header and the
database header.

Everything here works on ``bytes`` and never touches a file: reading the ``-shm`` or the
database file from a process that holds SQLite connections drops that process's locks
(``SQLITE_WAL.md`` §3), so the bytes are read by the probe subprocess
(:mod:`stepflow_top.wal.probe`) and parsed here.

Sources of the format facts:

* ``-wal`` header: sqlite.org ``fileformat2.html`` §4.1 "WAL File Format" and the header
  comment of SQLite's ``src/wal.c``.
* ``-shm`` header: the ``WalIndexHdr`` / ``WalCkptInfo`` structs and ``walIndexWriteHdr``
  / ``walIndexTryHdr`` in ``src/wal.c`` (copy [1] is written, then a memory barrier, then
  copy [0]; a reader accepts the header only when both copies are equal and the checksum
  over the first 40 bytes, computed with ``walChecksumBytes(1, ...)`` i.e. over native
  byte order words, matches).
* Database header: ``fileformat2.html`` §1.3 "The Database Header".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "WAL_MAGIC_LE",
    "WAL_MAGIC_BE",
    "WAL_HEADER_SIZE",
    "WAL_FRAME_HEADER_SIZE",
    "SHM_HEADER_SIZE",
    "SHM_READ_LOCK_BYTES",
    "SHM_DMS_BYTE",
    "DB_PENDING_BYTE",
    "DB_SHARED_FIRST",
    "DB_SHARED_SIZE",
    "DB_HEADER_SIZE",
    "WalFormatError",
    "TornRead",
    "WalHeader",
    "ShmHeader",
    "DbHeader",
    "wal_checksum",
    "parse_wal_header",
    "parse_shm_header",
    "parse_db_header",
    "live_wal_bytes",
    "frame_offset",
]

#: ``-wal`` magic when frame checksums use little-endian words (fileformat2.html §4.1).
WAL_MAGIC_LE = 0x377F0682
#: ``-wal`` magic when frame checksums use big-endian words.
WAL_MAGIC_BE = 0x377F0683
#: Size of the ``-wal`` file header in bytes.
WAL_HEADER_SIZE = 32
#: Size of each frame header in bytes; a frame is this header plus one page.
WAL_FRAME_HEADER_SIZE = 24
#: Bytes of the ``-shm`` file the probe reads: two 48-byte index headers, then the
#: 40-byte ``WalCkptInfo`` (nBackfill, aReadMark[5], aLock[8], nBackfillAttempted,
#: notUsed0) that starts at offset 96 (wal.c).
SHM_HEADER_SIZE = 136
#: The ``-shm`` byte offsets whose fcntl read locks are the read marks 0..4:
#: ``WAL_READ_LOCK(I) = 3 + I`` relative to ``WALINDEX_LOCK_OFFSET = 120`` (wal.c,
#: os_unix.c ``UNIX_SHM_BASE``). Locks only, never data.
SHM_READ_LOCK_BYTES = (123, 124, 125, 126, 127)
#: The ``-shm`` byte every open WAL connection keeps a shared fcntl lock on for as long
#: as it is open (the "dead man switch": ``UNIX_SHM_DMS = UNIX_SHM_BASE +
#: SQLITE_SHM_NLOCK`` = 120 + 8, os_unix.c ``unixLockSharedMemory``).
SHM_DMS_BYTE = 128
#: Lock bytes of the database file itself (sqliteInt.h ``PENDING_BYTE`` 0x40000000,
#: ``RESERVED_BYTE`` +1, ``SHARED_FIRST`` +2, ``SHARED_SIZE`` 510; os_unix.c
#: ``unixLock``): a shared lock on the SHARED range while a connection reads (and, in
#: WAL mode, for as long as it is open), RESERVED/PENDING/EXCLUSIVE while it writes.
#: They lie in the lock-byte page at 1 GiB, which never holds data (fileformat2.html,
#: "The Lock-Byte Page").
DB_PENDING_BYTE = 0x40000000
DB_SHARED_FIRST = DB_PENDING_BYTE + 2
DB_SHARED_SIZE = 510
#: Size of the database file header in bytes (fileformat2.html §1.3).
DB_HEADER_SIZE = 100

_WAL_FORMAT_VERSION = 3007000
_SHM_VERSION = 3007000
_UNUSED_READ_MARK = 0xFFFFFFFF
_MASK32 = 0xFFFFFFFF


class WalFormatError(ValueError):
    """Bytes that are not what the format says (bad magic, too short, bad version)."""


class TornRead(WalFormatError):
    """The ``-shm`` header was read while a writer was changing it: the two copies
    differ or the checksum does not match. Read again (wal.c ``walIndexTryHdr``)."""


def wal_checksum(
    data: bytes, big_endian: bool, seed: tuple[int, int] = (0, 0)
) -> tuple[int, int]:
    """SQLite's WAL checksum (``walChecksumBytes`` in wal.c) over ``data``.

    ``data`` is read as 32-bit words in big-endian order when ``big_endian`` else
    little-endian; its length must be a multiple of 8 bytes. ``seed`` is the previous
    checksum (s1, s2) for a chained frame checksum. Returns (s1, s2) as unsigned 32-bit
    integers. Raises :class:`WalFormatError` when the length is not a multiple of 8.
    """
    if len(data) % 8:
        raise WalFormatError(f"checksum input must be a multiple of 8 bytes, got {len(data)}")
    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    s1, s2 = seed
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & _MASK32
        s2 = (s2 + words[i + 1] + s1) & _MASK32
    return s1, s2


@dataclass(frozen=True)
class WalHeader:
    """The 32-byte ``-wal`` file header (fileformat2.html §4.1; all fields big-endian).

    ``checkpoint_seq`` is the writing connection's own checkpoint counter, not a global
    figure: count resets by ``salt1`` instead (SQLITE_WAL.md §1).
    """

    magic: int
    format_version: int
    page_size: int  # bytes
    checkpoint_seq: int
    salt1: int
    salt2: int
    checksum1: int
    checksum2: int
    checksum_valid: bool  # checksum of bytes 0..23 matches checksum1/checksum2

    @property
    def big_endian_checksums(self) -> bool:
        """True when frame checksums use big-endian words (magic ``0x377f0683``)."""
        return self.magic == WAL_MAGIC_BE


def parse_wal_header(b: bytes) -> WalHeader:
    """Parse the first 32 bytes of a ``-wal`` file.

    Offsets (fileformat2.html §4.1): 0 magic, 4 format version (3007000), 8 page size,
    12 checkpoint sequence, 16 salt-1, 20 salt-2, 24/28 checksum of bytes 0..23 (big-endian
    words when the magic is ``0x377f0683``, else little-endian).

    Raises :class:`WalFormatError` (a ``ValueError``) when fewer than 32 bytes are given,
    or the magic or format version is wrong. A header whose checksum does not match is
    returned with ``checksum_valid=False`` (SQLite then treats the WAL as empty; the probe
    re-reads in case it caught the header mid-write).
    """
    if len(b) < WAL_HEADER_SIZE:
        raise WalFormatError(f"-wal header needs {WAL_HEADER_SIZE} bytes, got {len(b)}")
    magic, version, page_size, seq, salt1, salt2, c1, c2 = struct.unpack(">8I", b[:32])
    if magic not in (WAL_MAGIC_LE, WAL_MAGIC_BE):
        raise WalFormatError(
            f"not a WAL file: magic 0x{magic:08x}, expected 0x{WAL_MAGIC_LE:08x} or "
            f"0x{WAL_MAGIC_BE:08x}"
        )
    if version != _WAL_FORMAT_VERSION:
        raise WalFormatError(f"unknown WAL format version {version}, expected 3007000")
    expected = wal_checksum(b[:24], big_endian=(magic == WAL_MAGIC_BE))
    return WalHeader(
        magic=magic,
        format_version=version,
        page_size=page_size,
        checkpoint_seq=seq,
        salt1=salt1,
        salt2=salt2,
        checksum1=c1,
        checksum2=c2,
        checksum_valid=(expected == (c1, c2)),
    )


@dataclass(frozen=True)
class ShmHeader:
    """The ``-shm`` wal-index header and checkpoint info (wal.c ``WalIndexHdr``,
    ``WalCkptInfo``), with SQLite's field names in the comments.

    ``read_marks[i]`` is ``aReadMark[i]``: the ``frames`` value a reader on slot *i* sees
    (``None`` when the slot is unused, ``0xffffffff``). Derived figures:
    :attr:`pending` frames (``mxFrame - nBackfill``) and :attr:`live_wal_bytes`.
    """

    version: int  # iVersion, 3007000
    change_counter: int  # iChange: +1 per commit; checkpoints leave it
    is_init: bool  # isInit
    big_endian_checksums: bool  # bigEndCksum: byte order of the -wal frame checksums
    page_size: int  # szPage in bytes (1 in the file means 65536)
    frames: int  # mxFrame: last valid frame in the -wal
    page_count: int  # nPage: database size in pages
    frame_checksum: tuple[int, int]  # aFrameCksum: checksum of the last frame
    salt1: int  # aSalt[0], unpacked big-endian like the -wal header's salt-1
    salt2: int  # aSalt[1]
    checksum: tuple[int, int]  # aCksum over bytes 0..39
    backfilled: int  # nBackfill: frames already copied into the database
    read_marks: tuple[int | None, ...]  # aReadMark[0..4]
    backfill_attempted: int  # nBackfillAttempted: > backfilled = interrupted checkpoint
    byte_order: str  # "little" or "big": the native order the header was written in

    @property
    def pending(self) -> int:
        """Frames written but not yet checkpointed: ``mxFrame - nBackfill`` (>= 0)."""
        return max(0, self.frames - self.backfilled)

    @property
    def live_wal_bytes(self) -> int:
        """Bytes of the ``-wal`` that hold the current cycle: 32 + frames*(page_size+24)."""
        return live_wal_bytes(self.frames, self.page_size)

    @property
    def interrupted(self) -> bool:
        """True when a checkpoint stopped part way (``nBackfillAttempted > nBackfill``)."""
        return self.backfill_attempted > self.backfilled


def _detect_shm_order(b: bytes) -> str:
    if struct.unpack_from("<I", b, 0)[0] == _SHM_VERSION:
        return "little"
    if struct.unpack_from(">I", b, 0)[0] == _SHM_VERSION:
        return "big"
    raise WalFormatError(
        f"not a wal-index: iVersion {struct.unpack_from('<I', b, 0)[0]}, expected 3007000"
    )


def parse_shm_header(b: bytes) -> ShmHeader:
    """Parse the first 136 bytes of a ``-shm`` file (native byte order of the writer).

    Layout (wal.c): two 48-byte copies of ``WalIndexHdr`` at 0 and 48 — iVersion u32 at
    +0, unused +4, iChange +8, isInit u8 +12, bigEndCksum u8 +13, szPage u16 +14, mxFrame
    +16, nPage +20, aFrameCksum[2] +24, aSalt[2] +32 (the ``-wal`` header's raw salt
    bytes), aCksum[2] +40; then ``WalCkptInfo`` at 96: nBackfill, aReadMark[5] (100..119),
    aLock[8] (120..127, fcntl lock bytes only), nBackfillAttempted (128).

    The byte order is detected from iVersion. Raises :class:`WalFormatError` when fewer
    than 136 bytes are given or iVersion is not 3007000 (uninitialised or not a
    wal-index), and :class:`TornRead` when the two copies differ or the checksum over
    bytes 0..39 (``walChecksumBytes(1, ...)``: native-order words) does not match —
    the caller should read again.
    """
    if len(b) < SHM_HEADER_SIZE:
        raise WalFormatError(f"-shm header needs {SHM_HEADER_SIZE} bytes, got {len(b)}")
    if b[0:48] != b[48:96]:
        raise TornRead("-shm header copies differ (a writer was updating it)")
    order = _detect_shm_order(b)
    e = "<" if order == "little" else ">"
    cks = struct.unpack_from(e + "2I", b, 40)
    if wal_checksum(b[0:40], big_endian=(order == "big")) != cks:
        raise TornRead("-shm header checksum does not match (a writer was updating it)")
    version, _unused, change = struct.unpack_from(e + "3I", b, 0)
    is_init, big_end = b[12], b[13]
    (sz,) = struct.unpack_from(e + "H", b, 14)
    frames, npage, fc1, fc2 = struct.unpack_from(e + "4I", b, 16)
    salt1, salt2 = struct.unpack_from(">2I", b, 32)
    backfilled = struct.unpack_from(e + "I", b, 96)[0]
    marks = struct.unpack_from(e + "5I", b, 100)
    attempted = struct.unpack_from(e + "I", b, 128)[0]
    return ShmHeader(
        version=version,
        change_counter=change,
        is_init=bool(is_init),
        big_endian_checksums=bool(big_end),
        page_size=65536 if sz == 1 else sz,
        frames=frames,
        page_count=npage,
        frame_checksum=(fc1, fc2),
        salt1=salt1,
        salt2=salt2,
        checksum=cks,
        backfilled=backfilled,
        read_marks=tuple(None if m == _UNUSED_READ_MARK else m for m in marks),
        backfill_attempted=attempted,
        byte_order=order,
    )


@dataclass(frozen=True)
class DbHeader:
    """Fields of the 100-byte database header (fileformat2.html §1.3; big-endian).

    In WAL mode the file's header lags behind until a checkpoint copies page 1 back:
    prefer :attr:`ShmHeader.page_count` for the current size.
    """

    page_size: int  # bytes (offset 16; 1 means 65536)
    write_version: int  # offset 18: 1 legacy (rollback journal), 2 WAL
    read_version: int  # offset 19
    change_counter: int  # offset 24
    page_count: int  # offset 28: database size in pages
    freelist_count: int  # offset 36: total freelist pages

    @property
    def wal_mode(self) -> bool:
        """True when the header says WAL (read and write versions 2, fileformat2 §1.3.3)."""
        return self.write_version == 2 and self.read_version == 2


_DB_MAGIC = b"SQLite format 3\x00"


def parse_db_header(b: bytes) -> DbHeader:
    """Parse the first 100 bytes of a database file.

    Offsets (fileformat2.html §1.3): 0 magic ``"SQLite format 3\\0"``, 16 page size u16
    (1 means 65536), 18/19 write/read version, 24 file change counter, 28 database size
    in pages, 36 freelist page count. Raises :class:`WalFormatError` when fewer than 100
    bytes are given or the magic string is wrong (not a SQLite database, or encrypted).
    """
    if len(b) < DB_HEADER_SIZE:
        raise WalFormatError(f"database header needs {DB_HEADER_SIZE} bytes, got {len(b)}")
    if b[:16] != _DB_MAGIC:
        raise WalFormatError("not a SQLite 3 database (header magic string is wrong)")
    (ps,) = struct.unpack_from(">H", b, 16)
    change, npages = struct.unpack_from(">2I", b, 24)
    (freelist,) = struct.unpack_from(">I", b, 36)
    return DbHeader(
        page_size=65536 if ps == 1 else ps,
        write_version=b[18],
        read_version=b[19],
        change_counter=change,
        page_count=npages,
        freelist_count=freelist,
    )


def live_wal_bytes(frames: int, page_size: int) -> int:
    """Bytes of the ``-wal`` in use by the current cycle: ``32 + frames*(page_size+24)``.

    The file itself may be longer: after a reset SQLite writes from offset 32 again and
    leaves stale frames behind (SQLITE_WAL.md §1).
    """
    return WAL_HEADER_SIZE + frames * (page_size + WAL_FRAME_HEADER_SIZE)


def frame_offset(i: int, page_size: int) -> int:
    """File offset in bytes of frame ``i`` (1-based): ``32 + (i-1)*(page_size+24)``."""
    if i < 1:
        raise ValueError(f"frames are numbered from 1, got {i}")
    return WAL_HEADER_SIZE + (i - 1) * (page_size + WAL_FRAME_HEADER_SIZE)
