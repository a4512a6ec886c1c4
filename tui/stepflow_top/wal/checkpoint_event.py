"""One inferred checkpoint event (:class:`CheckpointEvent`) and its JSON form, the
``--events`` line and the line of a saved history file.

What is read back from disk is validated as strictly as the command line: a history
file is the user's, but may be corrupt, hand-edited or from another version, and a
time such as ``1e20`` or ``NaN`` would break every date shown from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckpointEvent", "EVENT_TYPES", "EARLIEST_TIME"]

#: Events saved before this (2000-01-01T00:00:00Z, epoch seconds) are not believed.
EARLIEST_TIME = 946684800.0

EVENT_TYPES = ("wal_reset", "checkpoint", "interrupted", "wal_deleted", "wal_created")


@dataclass(frozen=True)
class CheckpointEvent:
    """One inferred event.

    ``type`` is one of ``wal_reset``, ``checkpoint``, ``interrupted``, ``wal_deleted``,
    ``wal_created``; ``kind`` is ``"truncate"`` or ``"backfill"`` for a checkpoint, else
    None. ``wall`` is when it was observed (seconds since the epoch). ``frames`` is the
    number of frames checkpointed (for ``interrupted``: frames attempted but not
    copied); ``at_least`` says it is a lower bound because sampling cannot see more.
    ``count`` is how many occurrences the event stands for (resets for ``wal_reset``).
    Sizes are ``-wal`` file sizes in bytes (None when the file was absent).
    """

    wall: float
    type: str
    kind: str | None = None
    frames: int | None = None
    at_least: bool = False
    wal_size_before: int | None = None
    wal_size_after: int | None = None
    salt1: int | None = None
    count: int = 1

    @property
    def label(self) -> str:
        """``truncate`` / ``backfill`` for checkpoints, else the type."""
        return self.kind if self.type == "checkpoint" and self.kind else self.type

    def to_dict(self) -> dict[str, Any]:
        """The ``--events`` JSON object (issue 3), plus ``time`` (epoch seconds),
        ``frames`` and ``at_least``."""
        d: dict[str, Any] = {"type": self.type, "time": self.wall}
        if self.type == "wal_reset":
            d.update(salt1=self.salt1, resets=self.count)
        if self.type == "checkpoint":
            d["kind"] = self.kind
        d.update(
            frames=self.frames, at_least=self.at_least,
            wal_size_before=self.wal_size_before, wal_size_after=self.wal_size_after,
        )
        return d

    @classmethod
    def from_dict(cls, d: Any, now: float | None = None) -> "CheckpointEvent":
        """Inverse of :meth:`to_dict`, as strict as the command line: ``d`` must be a
        JSON object whose ``type`` is known, whose ``kind`` fits it, whose ``time`` is a
        finite number of epoch seconds from :data:`EARLIEST_TIME` to a day after ``now``
        (default: the current time), and whose counts, sizes and salt are integers in
        their range (or absent/null where :meth:`to_dict` allows). Raises
        ``ValueError`` otherwise; never coerces (``"12"`` is not a time)."""
        if not isinstance(d, dict):
            raise ValueError("an event must be a JSON object")
        kind_of = d.get("type")
        if kind_of not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kind_of!r}")
        kind = d.get("kind")
        if kind not in (("truncate", "backfill") if kind_of == "checkpoint" else (None,)):
            raise ValueError(f"kind {kind!r} does not fit a {kind_of} event")
        wall = d.get("time")
        latest = (time.time() if now is None else now) + 86400.0
        if (not isinstance(wall, (int, float)) or isinstance(wall, bool)
                or not math.isfinite(wall) or not EARLIEST_TIME <= wall <= latest):
            raise ValueError(f"implausible time {wall!r}")
        at_least = d.get("at_least", False)
        if not isinstance(at_least, bool):
            raise ValueError(f"at_least must be true or false, got {at_least!r}")
        return cls(
            wall=float(wall), type=kind_of, kind=kind,
            frames=_count(d, "frames", _U32),
            at_least=at_least,
            wal_size_before=_count(d, "wal_size_before", _I64),
            wal_size_after=_count(d, "wal_size_after", _I64),
            salt1=_count(d, "salt1", _U32),
            count=_count(d, "resets", _U32, default=1, low=1),
        )


_U32 = 0xFFFFFFFF
_I64 = (1 << 63) - 1


def _count(d: dict, key: str, high: int, default: int | None = None, low: int = 0) -> Any:
    """``d[key]`` when it is an integer in ``low..high``; ``default`` when absent or
    null. Raises ``ValueError`` otherwise."""
    value = d.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key} {value!r} is not an integer from {low} to {high}")
    return value
