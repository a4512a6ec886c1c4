"""Checkpoint-history inference and warnings: pure tests on made-up samples, then a real
writer process doing every kind of checkpoint, observed step by step through the probe."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from stepflow_top.live.state import history_path, state_dir
from stepflow_top.wal.format import ShmHeader
from stepflow_top.wal.history import CheckpointEvent, CheckpointHistory, Warnings
from stepflow_top.wal.probe import Probe, ReadLock, WalSample
from wal_writer import WalWriter

BASE = time.time() - 3600  # sample walls are relative to now: saved events must be plausible


def mk(
    t: float, *, size: int | None = 100_000, salt1: int = 10, salt2: int = 7,
    frames: int = 20, backfilled: int = 0, attempted: int | None = None, inode: int = 1,
    marks: tuple = (0, None, None, None, None), locks: tuple = (), shm: bool = True,
) -> WalSample:
    exists = size is not None
    h = ShmHeader(
        version=3007000, change_counter=1, is_init=True, big_endian_checksums=False,
        page_size=4096, frames=frames, page_count=50, frame_checksum=(0, 0),
        salt1=salt1, salt2=salt2, checksum=(0, 0), backfilled=backfilled,
        read_marks=marks, backfill_attempted=backfilled if attempted is None else attempted,
        byte_order="little",
    ) if exists and shm else None
    return WalSample(
        db_path="/x/db", monotonic=t, wall=BASE + t, db_exists=True, db_size=4096 * 50,
        db_header=None, wal_exists=exists, wal_size=size, wal_inode=inode if exists else None,
        wal_header=None, shm_exists=exists, shm_header=h, read_locks=tuple(locks),
    )


def kinds(events: list[CheckpointEvent]) -> list[str]:
    return [e.label for e in events]


def test_first_sample_is_a_baseline() -> None:
    h = CheckpointHistory()
    assert h.observe(mk(0, backfilled=5, attempted=9)) == []
    assert h.events == ()


def test_resets_counted_by_salt1_even_when_sparse() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, salt1=10, frames=300, backfilled=100))
    ev = h.observe(mk(1, salt1=13, frames=40))
    assert kinds(ev) == ["wal_reset"]
    assert ev[0].count == 3 and ev[0].frames == 200 and ev[0].at_least
    assert ev[0].to_dict()["resets"] == 3 and ev[0].to_dict()["salt1"] == 13
    assert h.counts()["wal_reset"] == 3


def test_salt1_wraps_and_random_salts() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, salt1=0xFFFFFFFF))
    assert h.observe(mk(1, salt1=1))[0].count == 2
    h.observe(mk(2, salt1=5_000_000_000 % 2**32))  # randomised by a new connection
    assert h.events[-1].count == 1

    # A fresh -wal (salts 0, empty) getting its first frame: random salts, no reset.
    h = CheckpointHistory()
    h.observe(mk(0, size=0, salt1=0, salt2=0, frames=0))
    assert h.observe(mk(1, salt1=3_000_000_000, frames=3)) == []


def test_truncate_backfill_interrupted() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, frames=50, backfilled=10))
    ev = h.observe(mk(1, frames=60, backfilled=45))
    assert kinds(ev) == ["backfill"] and ev[0].frames == 35 and not ev[0].at_least

    ev = h.observe(mk(2, frames=60, backfilled=50, attempted=60))
    assert kinds(ev) == ["backfill", "interrupted"] and ev[1].frames == 10
    assert h.observe(mk(3, frames=61, backfilled=50, attempted=60)) == []  # reported once

    ev = h.observe(mk(4, size=0, salt1=11, frames=0))
    assert kinds(ev) == ["wal_reset", "truncate"]
    assert ev[1].wal_size_before == 100_000 and ev[1].wal_size_after == 0
    assert ev[1].frames == 11 and ev[1].at_least
    assert ev[1].to_dict()["kind"] == "truncate"

    # A rebuilt wal-index (nBackfill back to 0 under the same salts) is no event.
    assert h.observe(mk(5, size=0, salt1=11, frames=0)) == []
    c = h.counts()
    assert (c["truncate"], c["backfill"], c["interrupted"], c["wal_reset"]) == (1, 2, 1, 1)


def test_deleted_created_and_replaced_file() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, frames=30))
    ev = h.observe(mk(1, size=None))
    assert kinds(ev) == ["wal_deleted"] and ev[0].frames == 30 and ev[0].at_least
    assert h.observe(mk(2, size=None)) == []
    ev = h.observe(mk(3, size=0, salt1=999, frames=0, inode=2))
    assert kinds(ev) == ["wal_created"]
    ev = h.observe(mk(4, size=8000, salt1=5, frames=2, inode=3))  # deleted + recreated
    assert kinds(ev) == ["wal_deleted", "wal_created"]


def test_torn_sample_keeps_the_baseline() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, salt1=10))
    assert h.observe(mk(1, salt1=10, shm=False)) == []
    assert kinds(h.observe(mk(2, salt1=12))) == ["wal_reset"]
    assert h.events[-1].count == 2


def test_truncate_seen_by_size_when_there_is_no_shm() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, shm=False))
    assert kinds(h.observe(mk(1, size=0, shm=False))) == ["wal_reset", "truncate"]


def test_counts_and_rate_window() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, salt1=1))
    for i in range(1, 7):
        h.observe(mk(i * 60, salt1=1 + i))
    now = BASE + 360
    assert h.counts()["wal_reset"] == 6
    assert h.counts(since=now - 120)["wal_reset"] == 3  # events at 240, 300, 360
    assert h.rate_per_minute("wal_reset", window_s=120, now=now) == pytest.approx(1.5)
    assert h.last_event("truncate") is None and h.last_event().label == "wal_reset"


def test_persistence_in_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    db = tmp_path / "data" / "stepflow.db"
    path = history_path(db)
    assert path.parent == tmp_path / "state" / "stepflow-top" / "history"
    assert state_dir({"HOME": "/home/u"}) == Path("/home/u/.local/state")
    assert state_dir({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path("/h/.local/state")

    h = CheckpointHistory.persisted(history_path(db), max_events=5)
    h.observe(mk(0, salt1=1))
    for i in range(1, 8):
        h.observe(mk(i, salt1=1 + i))
    assert len(h.events) == 5 and h.persist_error is None
    path.write_text(path.read_text() + "not json\n{\"type\": \"bogus\"}\n")
    again = CheckpointHistory.persisted(history_path(db), max_events=5)
    assert again.events == h.events
    assert not (tmp_path / "data").exists()  # nothing beside the database
    lines = path.read_text().splitlines()
    assert len(lines) <= 2 * 5 + 2  # bounded: compacted when it grows
    assert json.loads(lines[0])["type"] == "wal_reset"


def test_warnings() -> None:
    w = Warnings(no_checkpoint_after_s=100, starved_after_s=10, own_pid=42)
    assert w.update(mk(0, frames=10), journal_mode="wal") == []
    [not_wal] = w.update(mk(1, frames=10), journal_mode="delete")
    assert not_wal.code == "not_wal" and "delete" in not_wal.message

    # Growing with no checkpoint.
    w = Warnings(no_checkpoint_after_s=100, starved_after_s=1000)
    w.update(mk(0, frames=10))
    assert w.update(mk(50, frames=200)) == []
    [grow] = w.update(mk(120, frames=400))
    assert grow.code == "wal_no_checkpoint" and "390 frames" in grow.message
    assert w.update(mk(130, frames=400, backfilled=400)) == []  # progress resets it

    # Starvation: pid 7 holds read mark 1 at frame 10 while the WAL grows.
    lock = (ReadLock(pid=7, slot=1), ReadLock(pid=8, slot=0))
    marks = (0, 10, None, None, None)
    w = Warnings(no_checkpoint_after_s=1e9, starved_after_s=10, own_pid=7)
    assert w.update(mk(0, frames=20, backfilled=10, marks=marks, locks=lock)) == []
    assert w.update(mk(5, frames=30, backfilled=10, marks=marks, locks=lock)) == []
    [starved] = w.update(mk(12, frames=40, backfilled=10, marks=marks, locks=lock))
    assert starved.code == "checkpoint_starved" and starved.pid == 7
    assert "pid 7" in starved.message and "itself" in starved.message
    assert starved.to_dict()["type"] == "warning"
    # The reader let go: no warning, and the clock restarts for a new holder.
    assert w.update(mk(13, frames=40, backfilled=40, marks=marks)) == []
    assert w.update(mk(14, frames=50, backfilled=40, marks=(0, 40, None, None, None),
                       locks=(ReadLock(9, 1),))) == []


def test_history_of_a_real_writer(tmp_path: Path) -> None:
    """PASSIVE, FULL, RESTART and TRUNCATE checkpoints, a small autocheckpoint and
    close/reopen, coordinated step by step; the inferred history matches."""
    db = tmp_path / "h.db"
    h = CheckpointHistory()
    with WalWriter(db) as w, Probe() as probe:
        def look() -> list[CheckpointEvent]:
            return h.observe(probe.sample(db))

        look()  # baseline: nothing there yet
        w.cmd("open 0")
        w.cmd("write 3")
        assert kinds(look()) == ["wal_created"]

        _, log, done = w.cmd("ckpt PASSIVE")["result"]
        ev = look()
        assert kinds(ev) == ["backfill"] and ev[0].frames == done == log

        w.cmd("write 2")  # first write after a complete checkpoint resets the WAL
        ev = look()
        assert kinds(ev) == ["wal_reset"] and ev[0].count == 1

        # Two resets between two samples (FULL, RESTART): counted exactly.
        w.cmd("ckpt FULL")
        w.cmd("write 2")
        w.cmd("ckpt RESTART")
        w.cmd("write 2")
        ev = look()
        assert kinds(ev) == ["wal_reset"] and ev[0].count == 2

        w.cmd("ckpt TRUNCATE")
        ev = look()
        assert kinds(ev) == ["wal_reset", "truncate"] and ev[1].wal_size_after == 0
        assert ev[1].wal_size_before and ev[1].wal_size_before > 0

        w.cmd("write 2")
        w.cmd("ckpt TRUNCATE")
        w.cmd("write 2")
        w.cmd("ckpt TRUNCATE")
        ev = look()
        assert kinds(ev) == ["wal_reset", "truncate"] and ev[0].count == 2

        # A tiny autocheckpoint: the writer's own commits checkpoint and reset.
        w.cmd("close")
        assert kinds(look()) == ["wal_deleted"]
        w.cmd("open 2")
        assert kinds(look()) == ["wal_created"]
        w.cmd("write 1")  # random salts on a fresh -wal: not a reset
        assert look() == []
        before = h.last_sample.salt1
        w.cmd("write 12 3000")
        after_sample = probe.sample(db)
        ev = h.observe(after_sample)
        resets = sum(e.count for e in ev if e.type == "wal_reset")
        assert resets >= 1 and resets == (after_sample.salt1 - before) & 0xFFFFFFFF

        w.cmd("close")
        assert kinds(look()) == ["wal_deleted"]

    c = h.counts()
    assert c["truncate"] == 2 and c["wal_deleted"] == 2 and c["wal_created"] == 2
    assert c["wal_reset"] == 1 + 2 + 1 + 2 + resets


def live(frames: int) -> int:
    return 32 + frames * (4096 + 24)


def test_truncate_inferred_from_a_shorter_wal_after_a_reset() -> None:
    """The 0-byte -wal lasts only until the next commit; a reset plus a file shorter
    than at the previous sample (with no stale frames) is the TRUNCATE that made it."""
    h = CheckpointHistory()
    h.observe(mk(0, salt1=10, frames=46, size=live(46)))
    ev = h.observe(mk(1, salt1=11, frames=3, size=live(3)))
    assert kinds(ev) == ["wal_reset", "truncate"]
    assert ev[1].wal_size_before == live(46) and ev[1].wal_size_after == live(3)
    # A commit's frames are appended before -shm counts them: still a TRUNCATE.
    h.observe(mk(2, salt1=11, frames=40, size=live(40)))
    assert kinds(h.observe(mk(3, salt1=12, frames=0, size=live(1)))) == ["wal_reset", "truncate"]


def test_no_truncate_is_invented() -> None:
    h = CheckpointHistory()
    h.observe(mk(0, salt1=10, frames=46, size=live(46)))
    # A plain reset writes from offset 32 again: the file keeps its length.
    assert kinds(h.observe(mk(1, salt1=11, frames=3, size=live(46)))) == ["wal_reset"]
    # Trimmed by journal_size_limit to a limit (1 MiB) that is no frame boundary.
    h.observe(mk(2, salt1=11, frames=300, size=live(300)))
    assert kinds(h.observe(mk(3, salt1=12, frames=2, size=1 << 20))) == ["wal_reset"]
    # Shorter under the same salts: no reset, so no TRUNCATE either.
    assert h.observe(mk(4, salt1=12, frames=2, size=live(2))) == []
    # Shorter with random salts (a new connection's first frame): not a reset count,
    # and not a TRUNCATE.
    h.observe(mk(5, salt1=12, frames=30, size=live(30)))
    assert kinds(h.observe(mk(6, salt1=3_000_000_000, frames=1, size=live(1)))) == ["wal_reset"]
    assert h.counts()["truncate"] == 0


def test_event_json_round_trip() -> None:
    events = [
        CheckpointEvent(BASE, "wal_reset", frames=5, at_least=True, wal_size_before=10,
                        wal_size_after=10, salt1=7, count=3),
        CheckpointEvent(BASE, "checkpoint", "truncate", frames=5, wal_size_before=9,
                        wal_size_after=0),  # salt1 is saved for resets only
        CheckpointEvent(BASE, "checkpoint", "backfill", frames=2),
        CheckpointEvent(BASE, "interrupted", frames=1),
        CheckpointEvent(BASE, "wal_deleted", frames=0, at_least=True),
        CheckpointEvent(BASE, "wal_created", frames=0),
    ]
    for ev in events:
        assert CheckpointEvent.from_dict(json.loads(json.dumps(ev.to_dict()))) == ev


GOOD = {"type": "checkpoint", "kind": "truncate", "frames": 4, "at_least": True,
        "wal_size_before": 8192, "wal_size_after": 0}


@pytest.mark.parametrize("change", [
    {"time": 1e20}, {"time": float("nan")}, {"time": float("inf")}, {"time": "12"},
    {"time": True}, {"time": None}, {"time": -5}, {"time": 0}, {"time": 100.0},
    {"type": "bogus"}, {"type": None}, {"kind": "full"}, {"kind": None},
    {"frames": -1}, {"frames": "4"}, {"frames": 2.5}, {"frames": True}, {"frames": 1 << 40},
    {"at_least": "yes"}, {"wal_size_before": -1}, {"wal_size_after": [1]},
    {"salt1": 1 << 32}, {"resets": 0}, {"resets": "2"},
])
def test_malformed_events_are_refused(change: dict) -> None:
    good = dict(GOOD, time=BASE)
    assert CheckpointEvent.from_dict(good).kind == "truncate"
    with pytest.raises(ValueError):
        CheckpointEvent.from_dict(dict(good, **change))


def test_a_bad_history_file_crashes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    db = tmp_path / "stepflow.db"
    path = history_path(db)
    path.parent.mkdir(parents=True)
    good = json.dumps(dict(GOOD, time=BASE))
    bad = [
        '{"type": "wal_reset", "time": 1e20}', '{"type": "wal_reset", "time": NaN}',
        '{"type": "wal_reset", "time": Infinity}', '{"type": "wal_reset", "time": "now"}',
        '[1, 2]', '42', '"text"', 'null', "[" * 100_000 + "]" * 100_000,
        '{"type": "checkpoint", "kind": "truncate", "time": %r, "frames": "x"}' % BASE,
    ]
    path.write_bytes(b"\xff\xfe not utf-8\n" + "\n".join(bad + [good]).encode() + b"\n")
    h = CheckpointHistory.persisted(history_path(db))
    assert [e.label for e in h.events] == ["truncate"] and h.persist_error is None
    assert h.counts()["truncate"] == 1 and h.rate_per_minute("truncate") >= 0

    # Only the tail of an oversized file is read.
    path.write_text("x" * (3 << 20) + "\n" + good + "\n")
    assert len(CheckpointHistory.persisted(history_path(db), max_events=10).events) == 1

    # A FIFO planted there: no hang; the history is kept in memory only.
    path.unlink()
    os.mkfifo(path)
    h = CheckpointHistory.persisted(history_path(db))
    assert h.path is None and "is a FIFO, not a history file" in (h.persist_error or "")
    h.observe(mk(0, salt1=1))
    assert kinds(h.observe(mk(1, salt1=2))) == ["wal_reset"]
