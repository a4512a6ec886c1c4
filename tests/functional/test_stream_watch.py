"""The file watch follows the store as the app reads it: a stream of commits is watched
at the long step (drawing is spaced anyway), and a commit now and then at the short one,
though every read the app makes is reported as a change too. The service runs in its own
process."""

from __future__ import annotations

import asyncio

from conftest import until
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from test_app import table


async def test_a_stream_of_commits_is_watched_at_the_long_step(service, tmp_path):
    service.start("first")
    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 1)
        seen = False
        for n in range(150):  # about 60 commits a second, for a few seconds
            service.start(f"busy-{n}")
            await asyncio.sleep(0.01)
            seen = seen or app.hints.streaming
        assert seen


async def test_a_commit_now_and_then_is_watched_at_the_short_step(service, tmp_path):
    service.start("first")
    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 1)
        for n in range(6):  # three commits a second, each read by the app
            run = service.start(f"calm-{n}")
            await until(pilot, lambda run=run: run in table(app).rows)
            assert not app.hints.streaming
            await asyncio.sleep(0.3)
            assert not app.hints.streaming
