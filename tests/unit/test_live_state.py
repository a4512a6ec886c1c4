"""The XDG state paths (live/state.py) and the change feed's start (live/events.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from stepflow_top.live.events import FeedOptions, change_feed
from stepflow_top.live.settings import Settings
from stepflow_top.live.state import history_path, settings_path, state_dir
from stepflow_top.store.connection import StoreUnavailable
from stepflow_top.store.locate import locate_store


def test_state_dir_follows_xdg_and_ignores_a_relative_value():
    assert state_dir({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path("/s")
    assert state_dir({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == Path("/h/.local/state")
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state")


def test_settings_and_histories_live_under_one_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert settings_path() == tmp_path / "stepflow-top" / "settings.json"
    first, second = history_path("/a/stepflow.db"), history_path("/b/stepflow.db")
    assert first.parent == second.parent == tmp_path / "stepflow-top" / "history"
    assert first != second and first.suffix == ".jsonl"
    Settings(sort="name").save()
    assert Settings.load().sort == "name" and settings_path().is_file()


def test_the_feed_of_a_missing_store_raises_before_any_event(tmp_path):
    async def first_event():
        feed = change_feed(locate_store(tmp_path / "none"), FeedOptions(seconds=5))
        return await feed.__anext__()

    with pytest.raises(StoreUnavailable, match="no database at"):
        asyncio.run(first_event())


def test_an_idle_feed_ends_when_its_seconds_pass(fixture_store):
    async def collect():
        return [e async for e in change_feed(locate_store(fixture_store),
                                             FeedOptions(seconds=0.5))]

    assert asyncio.run(collect()) == []
