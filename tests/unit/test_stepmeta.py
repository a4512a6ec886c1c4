"""Step metadata from META: markers (store/stepmeta.py): the service's real keys and value
formats, and bad values kept raw instead of failing."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
from conftest import FIXTURE
from stepflow_top.store.models import Step
from stepflow_top.store.stepmeta import StepMeta, parse_progress, parse_seconds, parse_step_meta


def meta(values: dict | None = None, **columns) -> StepMeta:
    return parse_step_meta(None if values is None else json.dumps(values), **columns)


@pytest.mark.parametrize(("value", "percent"), [
    ("50", 50.0), (" 50%", 50.0), ("50 %", 50.0), ("12.5%", 12.5), (75, 75.0), (0, 0.0),
    ("100", 100.0), ("3/10", 30.0), ("10 / 10", 100.0),
    ("150%", None), ("-5", None), ("almost", None), ("nan", None), ("inf", None),
    ("3/0", None), ("11/10", None), (True, None), ([50], None), ("", None),
])
def test_progress_formats(value, percent):
    assert parse_progress(value) == percent


@pytest.mark.parametrize(("value", "seconds"), [
    ("300", 300.0), (" 90 ", 90.0), (60, 60.0), (2.5, 2.5), ("90s", 90.0), ("5m", 300.0),
    ("1h30m", 5400.0), ("2.5 min", 150.0), ("1h 5m 3s", 3903.0), ("10 minutes", 600.0),
    ("0", None), ("-4", None), ("soon", None), ("5 parsecs", None), ("m5", None),
    ("5m junk", None), ("", None), (False, None), ({"s": 1}, None), ("1e400", None),
])
def test_duration_formats(value, seconds):
    assert parse_seconds(value) == seconds


def test_the_services_keys_in_any_case():
    got = meta({"PROGRESS": "40", "DESCRIPTION": " Installing npm packages ",
                "ESTIMATED_DURATION": "180"})
    assert got == StepMeta(progress=40.0, estimate=180.0, description="Installing npm packages")
    assert meta({"progress": " 50%", "description": "x", "estimated_duration": "3m"}) == \
        StepMeta(progress=50.0, estimate=180.0, description="x")


def test_bad_values_are_kept_raw():
    got = meta({"PROGRESS": "almost done", "ESTIMATED_DURATION": "a while"})
    assert got.progress is None and got.progress_raw == "almost done"
    assert got.estimate is None and got.estimate_raw == "a while"
    assert meta({"progress": [1, 2]}).progress_raw == "[1, 2]"
    assert meta({"progress": None, "description": 7}).description == "7"


def test_estimate_sources_in_order():
    # An explicit META:ESTIMATED_DURATION wins over the [duration=N] column.
    assert meta({"ESTIMATED_DURATION": "120", "duration": 60},
                estimated_duration=60.0).estimate == 120.0
    assert meta({"duration": 60}, estimated_duration=60.0).estimate == 60.0
    assert meta({"duration": 45}).estimate == 45.0
    assert meta({}, estimated_duration=-1.0).estimate_raw == "-1.0"


def test_the_description_column_when_no_marker_says_one():
    assert meta({}, description="From the column").description == "From the column"
    assert meta({"DESCRIPTION": "  "}, description="col").description == "col"
    assert meta({}, description="").description is None


@pytest.mark.parametrize("stored", [None, "", "not json", "[1, 2]", '"text"', "null",
                                    "[" * 100_000, '{"progress": '])
def test_metadata_that_is_not_an_object_is_no_metadata(stored):
    assert parse_step_meta(stored).empty


def test_the_fixture_store_steps():
    """What the real service wrote: string values, upper-case keys, an empty
    description column."""
    with closing(sqlite3.connect(f"file:{FIXTURE}/database/stepflow.db?immutable=1",
                                 uri=True)) as db:
        rows = {name: (metadata, description, estimate) for name, metadata, description,
                estimate in db.execute("SELECT name, metadata, description, "
                                       "estimated_duration FROM steps")}
    collection = rows["Data Collection"]
    assert parse_step_meta(collection[0], description=collection[1],
                           estimated_duration=collection[2]) == StepMeta(estimate=180.0)
    verification = rows["Environment Verification"]
    assert parse_step_meta(verification[0], description=verification[1]).description == \
        "Checking Python environment and dependencies"
    assert parse_step_meta(rows["environment_setup"][0]).empty  # {"stop_on_error": true}


def test_a_step_reads_its_own_columns():
    step = Step(id="s", execution_id="e", index=0, name="build", status="running",
                description="", estimated_duration=90.0, metadata='{"PROGRESS": "50"}')
    assert step.meta == StepMeta(progress=50.0, estimate=90.0)
