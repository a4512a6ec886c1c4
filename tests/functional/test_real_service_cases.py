"""What the real StepFlow service does that a monitor must survive (STEPFLOW_STORE.md),
each re-created by a scripted service in its own process (tests/service_writer.py),
with stepflow-top's answer read from ``--events`` and ``--once --json`` as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import wait_for
from service_writer import ServiceWriter


def stepflow_top(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stepflow_top", *args],
                          capture_output=True, text=True, timeout=60, env=env)


class EventStream:
    """``stepflow-top ROOT --events`` running beside the writer; ``lines`` fills in."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepflow_top", str(root), "--events", "--refresh", "0.5",
             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(json.loads(x) for x in self.process.stdout),
            daemon=True)
        self._reader.start()

    def seen(self, **fields) -> list[dict]:
        return [e for e in list(self.lines)
                if all(e.get(k) == v for k, v in fields.items())]

    def wait(self, timeout: float = 20, **fields) -> dict:
        return wait_for(lambda: (self.seen(**fields) or [None])[-1], timeout=timeout)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)


def started_feed(root: Path, service: ServiceWriter) -> EventStream:
    """An event stream whose baseline is taken (it has reported a run started after it)."""
    stream = EventStream(root)
    names = iter(range(1_000_000))

    def ready() -> bool:
        if stream.seen(type="execution", name="probe-run"):
            return True
        service.start("probe-run") if next(names) % 10 == 0 else None
        return False

    wait_for(ready, timeout=20, interval=0.1)
    return stream


def test_a_killed_service_leaves_lost_runs(service, tmp_path):
    root = tmp_path / "storage"
    run = service.start("nightly-etl")
    service.step(run, "Extract")
    stream = started_feed(root, service)
    try:
        service.kill()  # SIGKILL: rows stay pending/running, -wal and -shm stay
        lost = stream.wait(type="execution", id=run, status="lost")
        assert lost["inferred"] == "no service has the database open"
        assert stream.wait(type="writer", attached=False)["pids"] == []
        assert stream.wait(type="step", execution_id=run, status="lost")["name"] == "Extract"
    finally:
        stream.stop()
    document = json.loads(stepflow_top(str(root), "--once", "--json").stdout)
    assert document["writer"]["attached"] is False
    assert set(document["counts"]["by_status"]) == {"lost"}  # every run, probe runs too
    assert next(e for e in document["executions"] if e["id"] == run)["status"] == "lost"


def test_runs_of_a_dead_service_stay_lost_when_a_new_one_attaches(service, tmp_path):
    root = tmp_path / "storage"
    run = service.start("backup")
    service.step(run, "Copy")
    killed = time.time()
    service.kill()
    # A process start time is known to a clock tick (10 ms): a restart is never that fast.
    wait_for(lambda: time.time() > killed + 0.05, interval=0.01)
    with ServiceWriter(root) as restarted:  # the service comes back; it never re-saves them
        fresh = restarted.start("after-restart")
        restarted.step(fresh, "Work")
        document = json.loads(stepflow_top(str(root), "--once", "--json").stdout)
        statuses = {e["id"]: e["status"] for e in document["executions"]}
        assert document["writer"]["attached"] is True
        assert document["writer"]["pids"] == [restarted.pid]
        assert statuses == {run: "lost", fresh: "running"}


def test_a_failed_run_with_a_running_step_shows_how_the_step_ended(service, tmp_path):
    root = tmp_path / "storage"
    run = service.start("deploy")
    first, _ = service.step(run, "Build")
    second, _ = service.step(run, "Push")  # ends Build implicitly: its row stays running
    service.cmd("finish", run, "failed", 2)  # the script exits: Push stays running too
    result = stepflow_top(str(root), "--once", "--json", "--execution", run)
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    steps = [(s["name"], s["stored_status"], s["status"]) for s in document["steps"]]
    assert steps == [("Build", "running", "completed"), ("Push", "running", "failed")]
    assert "ended with its execution" in document["steps"][1]["inferred"]
    assert document["steps"][1]["duration_s"] is not None
    check = stepflow_top(str(root), "--check")
    assert check.returncode == 0, check.stdout  # an ordinary failed run is no finding


@pytest.mark.parametrize("style", ["replace", "update"])
def test_every_final_status_is_reported_whatever_the_save_style(tmp_path, style):
    root = tmp_path / "storage"
    with ServiceWriter(root, style=style) as service:
        stream = started_feed(root, service)
        try:
            runs = []
            for n in range(6):
                run = service.start(f"job-{n}")
                for index in range(3):
                    step, _ = service.step(run, f"step-{index}")
                    service.cmd("complete_step", step)
                service.cmd("finish", run, "failed" if n % 3 == 0 else "completed")
                runs.append(run)
            for n, run in enumerate(runs):
                stream.wait(type="execution", id=run,
                            status="failed" if n % 3 == 0 else "completed")
            for run in runs:
                wait_for(lambda run=run: len({e["step_index"] for e in stream.seen(
                    type="step", execution_id=run, status="completed")}) == 3, timeout=20)
        finally:
            stream.stop()


def test_the_feed_goes_on_after_housekeeping_deletes_the_newest_rows(service, tmp_path):
    root = tmp_path / "storage"
    old = [service.start(f"old-{n}") for n in range(3)]
    for run in old:
        service.cmd("finish", run, "completed")
    stream = started_feed(root, service)
    try:
        assert len(service.cmd("housekeep_newest", 5)["deleted"]) >= 3  # rowids restart lower
        stream.wait(type="executions_deleted")
        after = service.start("after-housekeeping")
        stream.wait(type="execution", id=after, status="running")
        service.cmd("finish", after, "completed")
        stream.wait(type="execution", id=after, status="completed")
        doomed = service.start("doomed")
        stream.wait(type="execution", id=doomed, status="running")
        service.cmd("delete", doomed)
        stream.wait(type="execution_deleted", id=doomed)
    finally:
        stream.stop()


def test_a_writer_in_another_time_zone_is_read_in_its_own(tmp_path):
    root = tmp_path / "storage"
    with ServiceWriter(root, tz="Asia/Shanghai") as service:  # UTC+8, no DST
        run = service.start("in-shanghai")
        service.step(run, "Work")
        env = {**__import__("os").environ, "TZ": "UTC"}
        document = json.loads(stepflow_top(str(root), "--once", "--json", env=env).stdout)
        report = next(e for e in document["executions"] if e["id"] == run)
        assert document["writer"]["utc_offset"] == "UTC+08:00"
        assert document["writer"]["utc_offset_source"] == "inferred"
        assert report["status"] == "running"
        assert 0 <= report["duration_s"] < 60  # not eight hours, not in the future
        given = json.loads(stepflow_top(str(root), "--once", "--json", "--writer-tz", "+08:00",
                                        env=env).stdout)
        assert given["writer"]["utc_offset_source"] == "--writer-tz"
        wrong = stepflow_top(str(root), "--once", "--writer-tz", "Mars/Olympus", env=env)
        assert wrong.returncode == 2 and "not a time zone name" in wrong.stderr
