"""A step's progress and elapsed-vs-estimated time as table cells and header text, from
what its ``META:`` markers say (``store/stepmeta.py``)."""

from __future__ import annotations

import math
from datetime import datetime

from rich.text import Text

from .. import formatting
from ..store.models import StepView
from ..store.stepmeta import StepMeta
from ..store.text import literal

BAR_CELLS = 5
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(percent: float, cells: int = BAR_CELLS) -> str:
    """``percent`` (0-100) as ``cells`` terminal cells of block characters, filled to
    the eighth of a cell: ``██▌░░`` for 50 over 5 cells."""
    # Rounded down, as the percent is: a full bar means done.
    eighths = int(max(0.0, min(100.0, percent)) / 100 * cells * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(cells, "░")


def percent(value: float) -> str:
    """``50%``, rounded down (``99.9`` is not ``100%``); tenths only below 10 (``2.5%``)."""
    if value >= 10:
        return f"{int(value)}%"
    return f"{math.floor(value * 10) / 10:g}%"


def about(seconds: float) -> str:
    """An estimated duration, rounded as people say it: ``~45s``, ``~1m30s``, ``~3m``,
    ``~1h30m``, ``~2d``."""
    whole = max(1, round(seconds))
    if whole < 60:
        return f"~{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 10:
        return f"~{minutes}m{secs:02d}s" if secs else f"~{minutes}m"
    if whole < 86400:
        hours, minutes = divmod(round(whole / 60), 60)
        if not hours:
            return f"~{minutes}m"
        return f"~{hours}h{minutes:02d}m" if minutes else f"~{hours}h"
    return f"~{round(whole / 86400)}d"


def progress_cell(meta: StepMeta, status: str) -> Text:
    """The steps table's Progress cell: a bar and percent while the step runs, the last
    percent (dim) for a step that stopped short (failed, lost), nothing for a
    completed one. A value that is not a percent is shown as stored, in yellow."""
    if meta.progress is not None:
        if status == "running":
            return Text(f"{bar(meta.progress)} {percent(meta.progress)}", no_wrap=True, end="")
        if status != "completed":
            return Text(percent(meta.progress), "dim", no_wrap=True, end="")
        return Text("")
    if meta.progress_raw is not None and status != "completed":
        text = Text(literal(meta.progress_raw), "yellow", no_wrap=True, end="")
        text.truncate(12, overflow="ellipsis")
        return text
    return Text("")


def timing(view: StepView, now: datetime) -> Text:
    """Elapsed against estimated for a running step (``1m05s / ~3m``, yellow once past
    the estimate), its duration for any other; ``—`` when unknown. An estimate that is
    not a duration is shown as stored."""
    elapsed = view.duration(now)
    shown = formatting.duration(elapsed)
    if view.status != "running":
        return Text(shown, no_wrap=True, end="")
    meta = view.step.meta
    if meta.estimate is not None:
        late = elapsed is not None and elapsed > meta.estimate
        return Text(f"{shown} / {about(meta.estimate)}", "yellow" if late else "",
                    no_wrap=True, end="")
    if meta.estimate_raw is not None:
        text = Text(f"{shown} / ", no_wrap=True, end="")
        text.append(literal(meta.estimate_raw), "yellow")
        text.truncate(24, overflow="ellipsis")
        return text
    return Text(shown, no_wrap=True, end="")


def step_suffix(meta: StepMeta) -> str:
    """What the executions list adds after the current step's name when there is room:
    `` 50%``; empty when no readable progress is stored."""
    return f" {percent(meta.progress)}" if meta.progress is not None else ""
