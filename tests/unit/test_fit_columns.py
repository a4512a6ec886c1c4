"""How the executions list shares a terminal's width (ui/list_columns.py fit_columns):
the name is cut last, Exit never pushed off, wide windows open the error message and
then tags; and the cells' texts for progress and estimates (ui/progress.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from stepflow_top.store.models import Step, StepView
from stepflow_top.store.stepmeta import StepMeta
from stepflow_top.ui.list_columns import CELL_PADDING, FIXED_WIDTH, Fit, fit_columns
from stepflow_top.ui.progress import about, bar, percent, progress_cell, timing


def used(fit: Fit) -> int:
    """Cells the shared columns take, padding included for the wide ones (the fixed
    budget already counts the name's and the step's)."""
    return fit.name + fit.step + sum(w + CELL_PADDING for w in (fit.error, fit.tags) if w)


@pytest.mark.parametrize(("width", "expected"), [
    (80, Fit(name=8, step=4)),
    (100, Fit(name=21, step=11)),
    (120, Fit(name=32, step=20)),
    (160, Fit(name=36, step=24, error=30)),
    (200, Fit(name=40, step=24, error=48, tags=16)),
])
def test_widths_at_common_sizes(width, expected):
    assert fit_columns(width) == expected


def test_everything_fits_and_nothing_narrows_as_the_window_widens():
    previous = fit_columns(30)
    for width in range(31, 320):
        fit = fit_columns(width)
        assert fit.name >= 6 and fit.step >= 4
        if width >= FIXED_WIDTH + 10:
            assert used(fit) <= width - FIXED_WIDTH, width  # Exit stays on screen
        for column in ("name", "step", "error", "tags"):
            assert getattr(fit, column) >= getattr(previous, column), (width, column)
        previous = fit


def test_the_name_is_cut_last_and_error_opens_before_tags():
    for width in range(60, 320):
        fit = fit_columns(width)
        assert fit.name >= fit.step
        assert not fit.tags or fit.error
        assert fit.wide == tuple(k for k in ("error", "tags") if getattr(fit, k))
    first_error = next(w for w in range(60, 320) if fit_columns(w).error)
    assert 110 < first_error <= 140  # wider names first (issue 9: above ~110 columns)
    assert fit_columns(first_error - 1).name > fit_columns(110).name


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "~1s"), (45, "~45s"), (90, "~1m30s"), (180, "~3m"), (600, "~10m"),
    (5400, "~1h30m"), (7200, "~2h"), (3 * 86400, "~3d"),
])
def test_estimates_read_as_people_say_them(seconds, text):
    assert about(seconds) == text


def test_bars_and_percents_round_down():
    assert bar(50) == "██▌░░" and bar(0) == "░░░░░" and bar(100) == "█████"
    assert bar(99.9) != bar(100) and percent(99.9) == "99%" and percent(2.55) == "2.5%"
    assert bar(250) == bar(100) and bar(-3) == bar(0)


START = datetime(2026, 11, 21, 19, 56, 1)


def step(status: str = "running", metadata: str | None = None, **kw) -> Step:
    return Step(id="s", execution_id="e", index=1, name="Data Collection", status=status,
                started_at=START, metadata=metadata, **kw)


def test_progress_cell_per_status():
    meta = StepMeta(progress=50.0)
    assert str(progress_cell(meta, "running")) == "██▌░░ 50%"
    assert str(progress_cell(meta, "failed")) == "50%"  # where it stopped
    assert str(progress_cell(meta, "completed")) == ""
    assert str(progress_cell(StepMeta(progress_raw="almost"), "running")) == "almost"
    assert str(progress_cell(StepMeta(), "running")) == ""


def test_elapsed_against_the_estimate():
    now = START + timedelta(seconds=65)
    running = step(metadata='{"ESTIMATED_DURATION": "180"}')
    assert str(timing(StepView(running, "running"), now)) == "1m05s / ~3m"
    late = timing(StepView(running, "running"), START + timedelta(seconds=200))
    assert str(late) == "3m20s / ~3m" and late.style == "yellow"
    raw = step(metadata='{"ESTIMATED_DURATION": "when it is done"}')
    assert str(timing(StepView(raw, "running"), now)) == "1m05s / when it is done"
    done = step("completed", '{"ESTIMATED_DURATION": "180"}', completed_at=now)
    assert str(timing(StepView(done, "completed"), now + timedelta(hours=1))) == "1m05s"
    assert str(timing(StepView(step(), "running"), now)) == "1m05s"


def test_short_names_leave_their_room_to_the_error_message():
    needs = {"name": 11, "step": 16}
    assert fit_columns(80, needs) == Fit(name=8, step=4)  # the same narrow layout
    assert fit_columns(100, needs) == Fit(name=11, step=16)
    assert fit_columns(200, needs) == Fit(name=11, step=16, error=77, tags=24)
    previous = fit_columns(60, needs)
    for width in range(61, 320):
        fit = fit_columns(width, needs)
        assert fit.name <= 11 and fit.step <= 16
        assert used(fit) <= max(10, width - FIXED_WIDTH)
        for column in ("name", "step", "error", "tags"):
            assert getattr(fit, column) >= getattr(previous, column), (width, column)
        previous = fit


def test_a_store_column_in_a_narrow_window_takes_the_user_columns_room():
    narrow = fit_columns(80, store=9)
    assert narrow.user == 0 and narrow.name + narrow.step >= 10
    assert fit_columns(120, store=9).user == 8  # room enough: users stay
    assert fit_columns(80).user == 8  # one store: no Store column to make room for
