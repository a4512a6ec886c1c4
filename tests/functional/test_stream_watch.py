"""The file watch follows the store as the app reads it: under a stream of commits the app
reads again at its frame rate with the watch stopped (drawing is spaced anyway), and a
commit now and then is seen by the watch, though every read the app makes is reported as
a change too. The service runs in its own process."""

from __future__ import annotations

import asyncio

from conftest import until
from stepflow_top.store.locate import locate_store
from stepflow_top.ui.app import StepflowTop
from test_app import table


async def test_a_stream_of_commits_is_read_at_the_frame_rate_without_the_watch(
        service, tmp_path):
    service.start("first")
    app = StepflowTop(locate_store(tmp_path / "storage"), fallback=30)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 1)
        seen_at_start: set | None = None  # the rows on screen when the stream began
        drawn_while_streaming: set = set()
        for n in range(150):  # about 60 commits a second, for a few seconds
            run = service.start(f"busy-{n}")
            await asyncio.sleep(0.01)
            if app.hints.streaming:
                rows = set(table(app).rows)
                seen_at_start = rows if seen_at_start is None else seen_at_start
                drawn_while_streaming |= rows - seen_at_start
        # New runs kept coming on screen though nothing was watched, up to the last
        # (the fallback timer, 30 s, plays no part).
        assert len(drawn_while_streaming) >= 10
        await until(pilot, lambda: run in table(app).rows, timeout=5)
        # The stream ended: the watch is back, and sees a single commit.
        await until(pilot, lambda: not app.hints.streaming)
        run = service.start("after")
        await until(pilot, lambda: run in table(app).rows, timeout=10)


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


async def test_a_refresh_that_fails_under_a_stream_is_told_and_the_watch_takes_over(
        service, tmp_path):
    """A bug in a refresh is a notice, not a frozen screen: the stream is no longer read
    at the frame rate, and the file watch sees the next commit."""
    from stepflow_top.live.refresher import Refresher

    class FailingOnce(Refresher):
        fail = False

        def refresh(self, *args, **kwargs):
            if self.fail:
                self.fail = False
                raise RuntimeError("a bug in the refresh")
            return super().refresh(*args, **kwargs)

    service.start("first")
    paths = locate_store(tmp_path / "storage")
    refresher = FailingOnce(paths)
    app = StepflowTop(paths, refresher=refresher, fallback=30)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await until(pilot, lambda: table(app).row_count == 1)
        for n in range(300):  # until the app reads the commits as a stream
            service.start(f"busy-{n}")
            await asyncio.sleep(0.01)
            if app.hints.streaming:
                break
        assert app.hints.streaming
        refresher.fail = True
        toast = await until(pilot, lambda: app.screen.query("Toast").first())
        assert "a bug in the refresh" in str(toast.render())
        assert not app.hints.streaming
        run = service.start("after the failure")
        await until(pilot, lambda: run in table(app).rows, timeout=10)
