"""Short human forms for durations, times and sizes, shared by the CLI and the UI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import humanize


def duration(seconds: float | None) -> str:
    """Compact duration for a table cell: ``0.4s``, ``12s``, ``3m05s``, ``25m``,
    ``2h03m``, ``4d02h``.

    Seconds are shown for the first ten minutes only (as kubectl does): a run that
    has been going for an hour, or a crashed one stuck at pending, then changes its
    cell once a minute instead of repainting the table every second.
    """
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 10:
        return f"{minutes}m{secs:02d}s"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def clock_time(value: datetime | None, now: datetime) -> str:
    """``19:55:36`` today, ``Nov 20 19:55`` on another day, ``—`` for None."""
    if value is None:
        return "—"
    if value.date() == now.date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%b %d %H:%M")


def clock_time_abs(unix: float, offset: timedelta | None = None) -> str:
    """``19:55:36`` for unix seconds, at UTC ``offset`` (the writer's, so it reads like
    the stored times beside it; default: this machine's zone); ``—`` when it cannot be
    shown (a time past year 9999)."""
    try:
        if offset is None:
            return datetime.fromtimestamp(unix).strftime("%H:%M:%S")
        return datetime.fromtimestamp(unix, timezone(offset)).strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "—"


def size(n_bytes: int | None) -> str:
    """``4.1 MiB`` style (humanize, binary units); ``—`` for None."""
    if n_bytes is None:
        return "—"
    return humanize.naturalsize(n_bytes, binary=True)


def progress(done: int, known: int) -> str:
    """``1/2`` finished over known steps; ``—`` when no step is known."""
    return f"{done}/{known}" if known else "—"


def cut(value: str | None, width: int) -> str:
    """``value`` shortened to ``width`` characters with a trailing ``…``; None gives ``""``."""
    text = value or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def cut_middle(value: str | None, width: int) -> str:
    """``value`` shortened to ``width`` characters by replacing its middle with ``…``,
    so a path keeps its root and its file name (``/srv/ste…/database/stepflow.db``);
    None gives ``""``, a ``width`` below 1 gives ``""``. The tail gets the extra
    character: a path's end tells more than its start."""
    text = value or ""
    if len(text) <= width:
        return text
    if width < 1:
        return ""
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
