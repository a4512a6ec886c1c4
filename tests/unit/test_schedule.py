"""The refresh scheduler with fake clocks (wall and CPU): coalescing, the adaptive frame
spacing and the writer's gap."""

from __future__ import annotations

from stepflow_top.live.schedule import CPU_SHARE, MAX_INTERVAL, RefreshScheduler


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


def stream(scheduler: RefreshScheduler, clock: Clock, cpu: Clock, frame_cpu: float,
           seconds: float = 10.0) -> list[float]:
    """Starts of the refreshes of a stream of commits (one arrives during every
    refresh), each frame costing ``frame_cpu`` CPU seconds."""
    starts = []
    delay = scheduler.request()
    end = clock.now + seconds
    while clock.now < end:
        clock.now += delay
        scheduler.start()
        starts.append(clock.now)
        scheduler.request()
        clock.now += 0.005
        cpu.now += frame_cpu
        delay = scheduler.finish()
    return starts


def test_a_cheap_stream_is_drawn_at_most_ten_times_a_second():
    clock, cpu = Clock(), Clock()
    starts = stream(RefreshScheduler(clock=clock, cpu_clock=cpu), clock, cpu, 0.004)
    assert 98 <= len(starts) <= 101  # ten seconds of commits
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.1 - 1e-9


def test_a_costly_stream_is_spaced_to_keep_its_share_of_a_core():
    clock, cpu = Clock(), Clock()
    starts = stream(RefreshScheduler(clock=clock, cpu_clock=cpu), clock, cpu, 0.015)
    gaps = [b - a for a, b in zip(starts[2:], starts[3:], strict=False)]
    assert all(abs(g - 0.015 / CPU_SHARE) < 1e-9 for g in gaps)


def test_a_stream_too_costly_for_its_share_is_still_drawn_five_times_a_second():
    clock, cpu = Clock(), Clock()
    starts = stream(RefreshScheduler(clock=clock, cpu_clock=cpu), clock, cpu, 0.08)
    gaps = [b - a for a, b in zip(starts[2:], starts[3:], strict=False)]
    assert all(abs(g - MAX_INTERVAL) < 1e-9 for g in gaps)


def test_a_stream_reported_only_after_each_refresh_is_spaced_by_its_cost_too():
    """The watcher may report the commits made during a refresh only after it ended
    (a long watch step under a stream): the frames are one stream all the same."""
    clock, cpu = Clock(), Clock()
    scheduler = RefreshScheduler(clock=clock, cpu_clock=cpu)
    starts = []
    delay = scheduler.request()
    while clock.now < 1010:
        clock.now += delay
        scheduler.start()
        starts.append(clock.now)
        clock.now += 0.005
        cpu.now += 0.08
        assert scheduler.finish() is None  # nothing asked for while it ran
        clock.now += 0.05  # the report of the commits made meanwhile
        delay = scheduler.request()
    gaps = [b - a for a, b in zip(starts[2:], starts[3:], strict=False)]
    assert all(abs(g - MAX_INTERVAL) < 1e-9 for g in gaps)


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
