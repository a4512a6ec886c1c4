"""The refresh scheduler with a fake clock: coalescing, the frame cap and the writer's gap."""

from __future__ import annotations

from stepflow_top.live.schedule import RefreshScheduler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_change_after_a_quiet_spell_starts_at_once():
    clock = Clock()
    scheduler = RefreshScheduler(clock=clock)
    assert scheduler.request() == 0.0
    scheduler.start()
    clock.now += 0.01
    assert scheduler.finish() is None
    clock.now += 5
    assert scheduler.request() == 0.0


def test_a_burst_coalesces_into_one_more_refresh():
    clock = Clock()
    scheduler = RefreshScheduler(clock=clock)
    assert scheduler.request() == 0.0
    scheduler.start()
    assert [scheduler.request() for _ in range(50)] == [None] * 50  # merged
    clock.now += 0.02
    delay = scheduler.finish()
    assert delay is not None and scheduler.request() is None  # already armed
    clock.now += delay
    scheduler.start()
    clock.now += 0.02
    assert scheduler.finish() is None  # the burst cost two refreshes


def test_a_stream_is_drawn_at_most_four_times_a_second():
    clock = Clock()
    scheduler = RefreshScheduler(clock=clock)
    starts = []
    delay = scheduler.request()
    while clock.now < 1010:
        clock.now += delay
        scheduler.start()
        starts.append(clock.now)
        scheduler.request()  # a commit arrives during every refresh
        clock.now += 0.005
        delay = scheduler.finish()
    assert 38 <= len(starts) <= 41  # ten seconds of commits
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.25 - 1e-9


def test_a_slow_refresh_leaves_the_writer_a_gap_as_long_as_itself():
    clock = Clock()
    scheduler = RefreshScheduler(clock=clock)
    scheduler.request()
    scheduler.start()
    scheduler.request()
    clock.now += 0.46  # a filter that scans a million rows
    assert abs(scheduler.finish() - 0.46) < 1e-9


def test_force_is_kept_when_requests_merge():
    clock = Clock()
    scheduler = RefreshScheduler(clock=clock)
    scheduler.request()
    assert scheduler.start() is False
    scheduler.request(force=True)
    scheduler.request()
    clock.now += 1
    scheduler.finish()
    assert scheduler.start() is True


def test_a_rollback_store_is_read_at_most_once_a_second():
    clock = Clock()
    scheduler = RefreshScheduler(clock=clock, min_interval=1.0)
    scheduler.request()
    scheduler.start()
    scheduler.request()
    clock.now += 0.01
    assert abs(scheduler.finish() - 0.99) < 1e-9
