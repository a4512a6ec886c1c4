"""The pure parsers, against bytes that real SQLite wrote (a writer in another process;
this test process holds no connection to those databases, so reading their files here
is harmless) and against hand-altered copies of those bytes."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest
from stepflow_top.wal.format import (
    SHM_HEADER_SIZE,
    WAL_MAGIC_BE,
    TornRead,
    WalFormatError,
    frame_offset,
    live_wal_bytes,
    parse_db_header,
    parse_shm_header,
    parse_wal_header,
    wal_checksum,
)
from wal_writer import WalWriter


def _read(path: Path, n: int | None = None) -> bytes:
    with open(path, "rb") as f:
        return f.read() if n is None else f.read(n)


@pytest.fixture
def live(tmp_path: Path):
    """A WAL database with 7 unchecked frames, held open by a writer process."""
    db = tmp_path / "live.db"
    with WalWriter(db) as w:
        w.cmd("open 0")
        w.cmd("write 6 500")
        yield db, w


def test_real_headers_agree_with_sqlite(live) -> None:
    db, w = live
    wal_bytes = _read(Path(f"{db}-wal"))
    wal = parse_wal_header(wal_bytes[:32])
    shm = parse_shm_header(_read(Path(f"{db}-shm"), SHM_HEADER_SIZE))
    dbh = parse_db_header(_read(db, 100))

    assert wal.checksum_valid
    assert wal.page_size == shm.page_size == dbh.page_size == 4096
    assert (wal.salt1, wal.salt2) == (shm.salt1, shm.salt2)
    assert shm.is_init and shm.byte_order == "little" and not shm.big_endian_checksums
    # A fresh WAL (no reset yet) holds exactly mxFrame frames.
    assert len(wal_bytes) == live_wal_bytes(shm.frames, shm.page_size)
    assert shm.backfilled == 0 and shm.pending == shm.frames
    assert dbh.wal_mode

    # SQLite's own view: the log size and what a PASSIVE checkpoint copies.
    busy, log, done = w.cmd("ckpt PASSIVE")["result"]
    assert busy == 0 and log == shm.frames
    after = parse_shm_header(_read(Path(f"{db}-shm"), SHM_HEADER_SIZE))
    assert after.backfilled == done == after.frames
    assert after.pending == 0 and not after.interrupted
    assert after.change_counter == shm.change_counter  # checkpoints leave iChange


def test_frame_checksum_chain_of_a_real_wal(live) -> None:
    """wal_checksum reproduces the cumulative frame checksums SQLite wrote."""
    db, _ = live
    data = _read(Path(f"{db}-wal"))
    hdr = parse_wal_header(data[:32])
    big = hdr.magic == WAL_MAGIC_BE
    seed = (hdr.checksum1, hdr.checksum2)
    n = (len(data) - 32) // (hdr.page_size + 24)
    assert n >= 6
    for i in range(1, n + 1):
        off = frame_offset(i, hdr.page_size)
        fh = data[off:off + 24]
        page = data[off + 24:off + 24 + hdr.page_size]
        assert struct.unpack(">2I", fh[8:16]) == (hdr.salt1, hdr.salt2)
        seed = wal_checksum(page, big, wal_checksum(fh[:8], big, seed))
        assert seed == struct.unpack(">2I", fh[16:24])


def _with_checksum(b: bytearray, order: str = "<") -> bytes:
    s1, s2 = wal_checksum(bytes(b[:40]), big_endian=(order == ">"))
    struct.pack_into(order + "2I", b, 40, s1, s2)
    b[48:96] = b[0:48]
    return bytes(b)


def test_torn_and_bad_shm_headers(live) -> None:
    db, _ = live
    good = bytearray(_read(Path(f"{db}-shm"), SHM_HEADER_SIZE))
    parse_shm_header(bytes(good))

    torn = bytearray(good)
    torn[16] ^= 0xFF  # copy [0] mxFrame differs from copy [1]
    with pytest.raises(TornRead, match="copies differ"):
        parse_shm_header(bytes(torn))

    bad_sum = bytearray(good)
    bad_sum[16] ^= 0xFF
    bad_sum[64] ^= 0xFF  # both copies changed alike, checksum now wrong
    with pytest.raises(TornRead, match="checksum"):
        parse_shm_header(bytes(bad_sum))

    with pytest.raises(WalFormatError, match="136 bytes"):
        parse_shm_header(bytes(good[:100]))
    with pytest.raises(WalFormatError, match="iVersion"):
        parse_shm_header(bytes(SHM_HEADER_SIZE))  # an all-zero, uninitialised -shm


def test_shm_page_size_one_means_65536_and_big_endian(live) -> None:
    db, _ = live
    b = bytearray(_read(Path(f"{db}-shm"), SHM_HEADER_SIZE))
    struct.pack_into("<H", b, 14, 1)
    h = parse_shm_header(_with_checksum(b))
    assert h.page_size == 65536

    # The same header as a big-endian machine would write it.
    le = parse_shm_header(bytes(_read(Path(f"{db}-shm"), SHM_HEADER_SIZE)))
    be = bytearray(b)
    for off in (0, 4, 8, 16, 20, 24, 28, 96, 100, 104, 108, 112, 116, 128):
        (v,) = struct.unpack_from("<I", b, off)
        struct.pack_into(">I", be, off, v)
    struct.pack_into(">H", be, 14, 4096)
    h = parse_shm_header(_with_checksum(be, ">"))
    assert h.byte_order == "big"
    assert (h.frames, h.page_count, h.salt1, h.page_size) == (
        le.frames, le.page_count, le.salt1, 4096)


def test_wal_header_errors(live) -> None:
    db, _ = live
    good = _read(Path(f"{db}-wal"), 32)
    with pytest.raises(WalFormatError, match="32 bytes"):
        parse_wal_header(good[:10])
    with pytest.raises(WalFormatError, match="magic"):
        parse_wal_header(b"\x00" * 32)
    bad = bytearray(good)
    bad[20] ^= 1  # salt-2 changed: checksum no longer matches
    assert parse_wal_header(bytes(bad)).checksum_valid is False


def test_db_header_of_a_rollback_journal_database(tmp_path: Path) -> None:
    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA page_size=1024")
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(b"x" * 300,)] * 50)
    conn.execute("DELETE FROM t WHERE rowid % 2 = 0")
    conn.commit()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    conn.close()
    h = parse_db_header(_read(db, 100))
    assert (h.page_size, h.page_count, h.freelist_count) == (1024, pages, free)
    assert free > 0 and not h.wal_mode and h.write_version == 1
    with pytest.raises(WalFormatError, match="not a SQLite"):
        parse_db_header(b"hello" * 20)


def test_offsets() -> None:
    assert frame_offset(1, 4096) == 32
    assert frame_offset(3, 4096) == 32 + 2 * 4120
    assert live_wal_bytes(0, 4096) == 32
    with pytest.raises(ValueError):
        frame_offset(0, 4096)
    with pytest.raises(WalFormatError):
        wal_checksum(b"1234", False)


def test_writer_protocol(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with WalWriter(db) as w:
        w.cmd("open 0")
        w.cmd("write 3")
        busy, log, done = w.cmd("ckpt PASSIVE")["result"]
        assert busy == 0 and log == done and log >= 3
        w.cmd("close")
    assert not Path(str(db) + "-wal").exists()
