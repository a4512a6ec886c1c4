"""WAL health warnings over successive :class:`~stepflow_top.wal.sample.WalSample` s:
not in WAL mode, a WAL that grows with no checkpoint, and a reader whose read mark
starves checkpoints (SQLITE_WAL.md §5: a reader's snapshot stops checkpoints at its read
mark). Pure logic, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .sample import WalSample

__all__ = ["WalWarning", "Warnings"]


@dataclass(frozen=True)
class WalWarning:
    """A health warning. ``code``: ``not_wal``, ``wal_no_checkpoint`` or
    ``checkpoint_starved``; ``message``: one human sentence; ``pid``: the reader that
    starves checkpoints, when there is one."""

    code: str
    message: str
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "warning", "code", "message"}`` for ``--events``."""
        d: dict[str, Any] = {"type": "warning", "code": self.code, "message": self.message}
        if self.pid is not None:
            d["pid"] = self.pid
        return d


def _fmt_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@dataclass
class _Pin:
    since: float
    pending_then: int


@dataclass
class Warnings:
    """Pure warning logic over successive samples (no I/O).

    ``no_checkpoint_after_s``: warn when pending frames grew and no checkpoint progress
    was seen for this many seconds. ``starved_after_s``: warn when one pid has held the
    same read mark (slots 1..4) for this many seconds while pending frames grew.
    ``own_pid``: this process, named as such in messages.
    """

    no_checkpoint_after_s: float = 300.0
    starved_after_s: float = 30.0
    own_pid: int | None = None
    _cycle: tuple[Any, ...] | None = field(default=None, repr=False)
    _progress_at: float | None = field(default=None, repr=False)
    _pending_at_progress: int = field(default=0, repr=False)
    _pins: dict[tuple[int, int, int], _Pin] = field(default_factory=dict, repr=False)

    def update(self, sample: WalSample, journal_mode: str | None = None) -> list[WalWarning]:
        """Feed one sample; return the warnings active now. ``journal_mode`` is what
        ``PRAGMA journal_mode`` said on a read-only connection, when known."""
        out: list[WalWarning] = []
        mode = (journal_mode or "").lower()
        if (mode and mode != "wal") or (not mode and sample.wal_mode is False):
            shown = mode or "rollback journal (the database header says so)"
            out.append(WalWarning(
                "not_wal",
                f"The database is not in WAL mode ({shown}): a reader can block the "
                "writer's commits.",
            ))
        now = sample.monotonic
        pending = sample.pending or 0
        cycle = (sample.wal_exists, sample.wal_inode, sample.salt1, sample.salt2,
                 sample.backfilled)
        if cycle != self._cycle or self._progress_at is None:
            self._cycle, self._progress_at, self._pending_at_progress = cycle, now, pending
        elif (
            pending > self._pending_at_progress
            and now - self._progress_at >= self.no_checkpoint_after_s
        ):
            grown = pending - self._pending_at_progress
            size = grown * ((sample.page_size or 0) + 24)
            out.append(WalWarning(
                "wal_no_checkpoint",
                f"The WAL grew by {grown} frames ({_fmt_bytes(size)}) with no checkpoint "
                f"for {now - self._progress_at:.0f} s; {pending} frames wait.",
            ))
        out.extend(self._starvation(sample, now, pending))
        return out

    def _starvation(self, sample: WalSample, now: float, pending: int) -> list[WalWarning]:
        h = sample.shm_header
        seen: dict[tuple[int, int, int], _Pin] = {}
        out: list[WalWarning] = []
        if h is None:
            self._pins = seen
            return out
        for lock in sample.read_locks:
            if lock.slot == 0:
                continue
            mark = h.read_marks[lock.slot]
            if mark is None or mark >= h.frames:
                continue  # sees the newest frame: not (yet) holding the WAL back
            key = (lock.pid, lock.slot, mark)
            pin = self._pins.get(key) or _Pin(since=now, pending_then=pending)
            seen[key] = pin
            held = now - pin.since
            if held >= self.starved_after_s and pending > pin.pending_then:
                who = f"pid {lock.pid}" + (
                    " (stepflow-top itself)" if lock.pid == self.own_pid else "")
                out.append(WalWarning(
                    "checkpoint_starved",
                    f"Checkpoints are starved: {who} has held read mark {lock.slot} "
                    f"(frame {mark}) for {held:.0f} s while {pending} frames wait.",
                    pid=lock.pid,
                ))
        self._pins = seen
        return out
