"""The executions list's columns: which are shown and how wide, for a terminal's width
and the rows shown (issue 9: the name is cut last, Exit is never pushed off screen, a
wide window shows failed runs' error messages, then tags), and the wide columns' cells."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text

from ..store.models import Execution, Status
from ..store.stepmeta import StepMeta
from ..store.text import literal
from .progress import step_suffix
from .widgets import cell

COLUMNS = (
    ("status", "Status"), ("name", "Name"), ("user", "User"), ("started", "Started"),
    ("duration", "Duration"), ("steps", "Steps"), ("current", "Current step"), ("exit", "Exit"),
)
# Shown only in wide windows, after Exit, opened in this order (issue 9).
WIDE_COLUMNS = (("error", "Error"), ("tags", "Tags"))
WIDE = frozenset(key for key, _ in WIDE_COLUMNS)
LABELS = dict(COLUMNS + WIDE_COLUMNS)

# Status "✓ completed*", User, Started "Nov 21 19:55", Duration, Steps, Exit "-15",
# cell padding, scrollbar: everything but the name and the current step.
FIXED_WIDTH = 12 + 8 + 12 + 8 + 5 + 4 + 2 * len(COLUMNS) + 3
CELL_PADDING = 2
# The room the fixed columns leave, handed out in this order: each entry grows a column
# to that many cells. The name and the current step take turns, the step giving way
# first as the window narrows, so the name is cut last; then the error message opens
# (at 138 columns when names and steps are long, sooner when they are short), then
# tags. An error or tags entry that finds its column closed opens it only when the
# whole width (and its padding) fits, and the handing out stops there: widening a
# window never narrows a column.
GROWTH = (
    ("name", 6), ("step", 4), ("name", 16), ("step", 11), ("name", 24), ("step", 16),
    ("name", 32), ("step", 20), ("name", 36), ("error", 12), ("step", 24), ("error", 30),
    ("tags", 10), ("name", 40), ("error", 48), ("tags", 16), ("step", 32), ("name", 48),
    ("error", 60), ("tags", 24),
)
GROWTH_FIRST = {column: target for column, target in reversed(GROWTH)}  # first sizes
PROGRESS_ROOM = 12  # the current step cell shows the step's progress from this width
USER_WIDTH = 8
SHARED_MINIMUM = 10  # cells the name and the current step need at least (6 and 4)


@dataclass(frozen=True)
class Fit:
    """Widths in terminal cells of the columns that share what the fixed ones leave;
    ``error`` and ``tags`` are 0 while their columns are not shown, ``user`` is 0 while
    the Store column has taken the User column's room."""

    name: int
    step: int
    error: int = 0
    tags: int = 0
    user: int = USER_WIDTH

    @property
    def wide(self) -> tuple[str, ...]:
        """Keys of the wide columns shown, in WIDE_COLUMNS order."""
        return tuple(key for key, _ in WIDE_COLUMNS if getattr(self, key))


def fit_columns(width: int, needs: dict[str, int] | None = None, store: int = 0) -> Fit:
    """The column widths for a screen ``width`` cells wide (see GROWTH). ``needs``:
    the cells the widest ``name`` and ``step`` of the rows shown take (a column never
    grows past what it needs, leaving the room to the entries after it; what is left
    after the last one goes to the error message). ``store``: the cells a Store column
    takes (several stores); when it would leave the name and the step less than
    SHARED_MINIMUM, the User column gives up its room (``user`` 0; an unlabelled empty
    column still takes one cell). Without needs, at 80 columns: name 8, step 4; at 120:
    name 32, step 20; at 160 the error message too."""
    needs = needs or {}
    room = width - store
    user = 0 if store and room - FIXED_WIDTH < SHARED_MINIMUM else USER_WIDTH
    room += 0 if user else USER_WIDTH - 1
    spare = max(10, room - FIXED_WIDTH)
    widths = dict.fromkeys(("name", "step", "error", "tags"), 0)
    for column, target in GROWTH:
        if column in WIDE and not widths[column]:  # a wide column still closed
            if spare < target + CELL_PADDING:
                break
            widths[column], spare = target, spare - target - CELL_PADDING
            continue
        wanted = min(target, max(needs.get(column, target), GROWTH_FIRST[column]))
        grow = min(max(0, wanted - widths[column]), spare)
        widths[column] += grow
        spare -= grow
    else:
        widths["error"] += spare
    return Fit(**widths, user=user)


def column_needs(executions: Sequence[Execution],
                 progressing: frozenset[str] = frozenset()) -> dict[str, int] | None:
    """Cells the widest name and current step of ``executions`` take, headers counted:
    ``fit_columns``'s ``needs``; None for no rows. The runs whose ids are in
    ``progressing`` (running or stalled: ``shows_progress``) get room for their step's
    progress too."""
    if not executions:
        return None
    room = len(step_suffix(StepMeta(progress=100.0)))
    return {
        "name": max(cell_len(LABELS["name"]),
                    *(cell_len(literal(e.name)) for e in executions)),
        "step": max(cell_len(LABELS["current"]),
                    *(cell_len(literal(e.current_step))
                      + (room if e.running_metadata and e.id in progressing else 0)
                      for e in executions)),
    }


def shows_progress(status: Status) -> bool:
    """Whether a run in ``status`` shows its current step's progress: only while that
    step may still move (a lost run's last percent would read as work going on)."""
    return status in (Status.RUNNING, Status.STALLED)


def error_cell(e: Execution, status: Status, width: int) -> Text:
    """The Error cell: the run's stored error message; for a failed run that has none,
    how it ended (a cancel is stored as exit -15: STEPFLOW_STORE.md) and its last step
    (where it stopped, which is not always the step that failed)."""
    if e.error_message:
        return cell(e.error_message, "red", width=width)
    if status is not Status.FAILED:
        return Text("")
    how = "cancelled" if e.exit_code == -15 else "failed"
    return cell(f"{how}, last step {e.last_step}" if e.last_step else how, "dim", width=width)


def tags_text(stored: str | None) -> str:
    """``etl, nightly`` from the stored JSON array; text that is not one, as stored."""
    if not stored:
        return ""
    try:
        value = json.loads(stored)
    except (ValueError, RecursionError):
        return stored
    if isinstance(value, list):
        return ", ".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    return stored
