"""What is known about the service that writes the store: is it attached, since when,
which process, and which time zone its timestamps are in.

Attachment comes from the probe (fcntl locks on ``-shm`` and the database file, read
from ``/proc/locks`` in the probe process: ``WalSample.writer_attached``). The writer's
UTC offset is inferred from the newest stored timestamps against the modification time
of the file its last commit wrote (``-wal``, else the database): the service writes
local time with no zone (STEPFLOW_STORE.md "Time zone") and file times are absolute.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..store.models import local_offset

OFFSET_STEP = timedelta(minutes=15)  # every UTC offset in use is a multiple of 15 min
MAX_RESIDUAL = timedelta(seconds=90)  # newest row vs. last commit, beyond which we don't guess


@dataclass(frozen=True)
class Holder:
    """A process that has the database open: ``pid`` (0 when it lives outside this
    pid namespace), its command line (None when unreadable) and its start time (unix
    seconds, None when unknown)."""

    pid: int
    command: str | None = None
    started: float | None = None

    def describe(self) -> str:
        """``pid 1234 (python app/main.py)``, or what is known of it: the program is
        named by its file name, so the line stays short."""
        if self.pid <= 0:
            return "a process outside this pid namespace"
        return f"pid {self.pid}" + (f" ({self.short_command})" if self.command else "")

    @property
    def short_command(self) -> str | None:
        """The command line with the program's directory left out."""
        if not self.command:
            return None
        program, _, rest = self.command.partition(" ")
        return (os.path.basename(program) + (" " + rest if rest else "")).strip()


@dataclass(frozen=True)
class WriterState:
    """The writer as last observed.

    ``attached``: True/False from the locks, None when they cannot be read (another OS,
    a network filesystem, a rollback-journal store): then nothing is called lost.
    ``holders``: the processes other than stepflow-top that have the database open.
    ``last_commit``: unix seconds of the newest write to ``-wal`` or the database file.
    ``offset``: the writer's UTC offset used for its timestamps; ``offset_source``
    says how it is known: ``"inferred"``, ``"--writer-tz"`` or ``"assumed local"``.
    """

    attached: bool | None = None
    holders: tuple[Holder, ...] = ()
    last_commit: float | None = None
    offset: timedelta = timedelta(0)
    offset_source: str = "assumed local"

    @property
    def started(self) -> float | None:
        """When the newest attached process started (unix seconds), if known."""
        times = [h.started for h in self.holders if h.started is not None]
        return max(times) if times else None

    def to_json(self) -> dict:
        """``{"attached", "pids", "last_commit", "utc_offset", "utc_offset_source"}``
        for ``--once --json`` and ``--events`` (times in unix seconds)."""
        return {
            "attached": self.attached,
            "pids": [h.pid for h in self.holders],
            "last_commit": self.last_commit,
            "utc_offset": format_offset(self.offset),
            "utc_offset_source": self.offset_source,
        }


def process_started(pid: int) -> float | None:
    """Start time of ``pid`` in unix seconds, to a clock tick (10 ms): ``starttime``
    from ``/proc/PID/stat`` (field 22, ticks since boot) against the seconds since boot
    in ``/proc/uptime`` (proc(5); ``btime`` in /proc/stat is whole seconds, too coarse
    to order a restart against the last save). None when unknown (no /proc, the
    process is gone)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
        now = time.time()
        return now - uptime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def infer_offset(newest_row: datetime | None, last_commit: float | None) -> timedelta | None:
    """The writer's UTC offset, rounded to 15 minutes: ``newest_row`` (a stored
    timestamp, naive writer-local time) minus ``last_commit`` (unix seconds of the
    write that stored it). None when either is unknown, or when the two are further
    apart than MAX_RESIDUAL after rounding (the newest row is not from the last
    commit, or the file time says nothing: a copied or checked-out store)."""
    if newest_row is None or last_commit is None:
        return None
    try:
        utc = datetime.fromtimestamp(last_commit, timezone.utc).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return None
    raw = newest_row - utc
    steps = round(raw / OFFSET_STEP)
    offset = steps * OFFSET_STEP
    if abs(raw - offset) > MAX_RESIDUAL or abs(offset) > timedelta(hours=14):
        return None
    return offset


def parse_writer_tz(text: str) -> tzinfo | None:
    """``--writer-tz``: ``+08:00`` / ``-0530`` / ``UTC`` / an IANA name such as
    ``Asia/Shanghai``, or ``local`` (None: this process's zone). Raises ValueError
    with a sentence for anything else."""
    value = text.strip()
    if value.lower() == "local":
        return None
    if value.upper() in ("UTC", "Z"):
        return timezone.utc
    if value[:1] in "+-":
        digits = value[1:].replace(":", "")
        if digits.isdigit() and len(digits) in (2, 4):
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            if hours <= 14 and minutes < 60:
                sign = -1 if value[0] == "-" else 1
                return timezone(sign * timedelta(hours=hours, minutes=minutes))
        raise ValueError(f"--writer-tz {text!r}: write an offset as +08:00 or -05:30")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--writer-tz {text!r}: not a time zone name (e.g. Asia/Shanghai), "
                         "an offset (+08:00) or 'local'") from None


def zone_offset(zone: tzinfo | None, at: float) -> timedelta:
    """The UTC offset of ``zone`` (None: this process's) at unix time ``at``."""
    if zone is None:
        return local_offset(at)
    return datetime.fromtimestamp(at, zone).utcoffset() or timedelta(0)


def format_offset(offset: timedelta) -> str:
    """``UTC+08:00`` / ``UTC-05:30`` / ``UTC+00:00``."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"
