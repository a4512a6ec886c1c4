"""``stepflow-top PATH --wait EXECUTION`` against a scripted StepFlow service in its own
process (tests/service_writer.py): the exit status of ``gh run watch --exit-status``
(0 completed, 1 failed or lost, 2 no such run) and one line per step change."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import wait_for
from service_writer import ServiceWriter


class Waiting:
    """``stepflow-top ROOT… --wait QUERY`` running beside the writer; ``lines`` fills in."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepflow_top", *args, "--refresh", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(x.rstrip("\n") for x in self.process.stdout),
            daemon=True)
        self._reader.start()

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def result(self, timeout: float = 30) -> tuple[int, list[str], str]:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.lines, self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_once(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stepflow_top", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def waiting():
    started: list[Waiting] = []

    def start(*args: str) -> Waiting:
        started.append(Waiting(*args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_a_run_that_completes_exits_0_with_a_line_per_step(service, waiting, tmp_path):
    root = tmp_path / "storage"
    run = service.start("nightly-etl")
    extract, _ = service.step(run, "Extract")
    follow = waiting(str(root), "--wait", run)
    wait_for(lambda: follow.saw("running    Extract"))
    service.cmd("complete_step", extract)
    wait_for(lambda: follow.saw("completed  Extract"))
    service.step(run, "Load")
    wait_for(lambda: follow.saw("running    Load"))
    service.cmd("finish", run, "completed")
    code, lines, stderr = follow.result()
    assert code == 0, (lines, stderr)
    assert lines[0].startswith(f"watching nightly-etl ({run[:8]}), started ")
    assert lines[-1].startswith(f"✓ nightly-etl ({run[:8]}) completed after ")
    assert any(line.startswith("  ✓ completed  Load") for line in lines)


def test_a_run_that_fails_exits_1_and_names_the_failed_step(service, waiting, tmp_path):
    run = service.start("deploy")
    build, _ = service.step(run, "Build")
    follow = waiting(str(tmp_path / "storage"), "--wait", run)
    wait_for(lambda: follow.saw("running    Build"))
    service.cmd("fail_step", build, 3, "compiler error")
    service.cmd("finish", run, "failed", 3)
    code, lines, stderr = follow.result()
    assert code == 1, (lines, stderr)
    assert "  ✗ failed     Build" in "\n".join(lines) and "(exit code 3)" in lines[-2]
    assert lines[-1].startswith(f"✗ deploy ({run[:8]}) failed after ")
    assert lines[-1].endswith(": step Build failed (exit code 3)")


def test_a_run_whose_service_is_killed_is_lost_and_exits_1(service, waiting, tmp_path):
    run = service.start("nightly-etl")
    service.step(run, "Extract")
    follow = waiting(str(tmp_path / "storage"), "--wait", "nightly-etl")
    wait_for(lambda: follow.saw("running    Extract"))
    service.kill()  # SIGKILL: the rows stay pending/running for ever
    code, lines, stderr = follow.result()
    assert code == 1, (lines, stderr)
    assert "  ◌ lost       Extract" in lines
    assert lines[-1] == (f"◌ nightly-etl ({run[:8]}) is lost: no service has the "
                         "database open")


def test_no_such_run_exits_2(service, tmp_path):
    service.start("nightly-etl")
    result = wait_once(str(tmp_path / "storage"), "--wait", "no-such-run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("stepflow-top: no execution no-such-run in ")
    missing = wait_once(str(tmp_path / "nowhere"), "--wait", "latest")
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"stepflow-top: no database at {tmp_path / 'nowhere'}")


def test_a_run_that_already_ended_returns_at_once(service, tmp_path):
    root = str(tmp_path / "storage")
    done = service.start("report")
    service.cmd("finish", done, "completed")
    failed = service.start("report-b")
    service.cmd("cancel", failed)
    completed = wait_once(root, "--wait", done)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1].startswith(
        f"✓ report ({done[:8]}) completed (before stepflow-top looked) after ")
    cancelled = wait_once(root, "--wait", "latest")
    assert cancelled.returncode == 1, cancelled.stderr
    assert cancelled.stdout.splitlines()[-1].endswith("(exit code -15)")


def test_a_name_is_its_newest_run_and_a_prefix_must_be_unambiguous(service, tmp_path):
    root = str(tmp_path / "storage")
    older = service.start("nightly")
    service.cmd("finish", older, "failed")
    newer = service.start("nightly")
    service.cmd("finish", newer, "completed")
    by_name = wait_once(root, "--wait", "nightly")
    assert by_name.returncode == 0 and f"({newer[:8]})" in by_name.stdout
    by_prefix = wait_once(root, "--wait", older[:6].upper())
    assert by_prefix.returncode == 1 and f"({older[:8]})" in by_prefix.stdout
    # A run named like another run's id prefix: the query may mean either.
    twin = service.start(newer[:5])
    ambiguous = wait_once(root, "--wait", newer[:5])
    assert ambiguous.returncode == 2 and ambiguous.stdout == ""
    assert "may mean 2 executions" in ambiguous.stderr
    assert newer in ambiguous.stderr and twin in ambiguous.stderr


def test_several_stores_are_searched_and_a_run_in_two_is_ambiguous(tmp_path):
    first = ServiceWriter(tmp_path / "a")
    second = ServiceWriter(tmp_path / "b")
    try:
        only_b = second.start("only-in-b")
        second.cmd("finish", only_b, "completed")
        for writer in (first, second):
            writer.cmd("finish", writer.start("everywhere"), "completed")
        stores = [f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}"]
        found = wait_once(*stores, "--wait", "only-in-b")
        assert found.returncode == 0, found.stderr
        assert found.stdout.startswith(f"watching only-in-b ({only_b[:8]}) in b, started ")
        both = wait_once(*stores, "--wait", "everywhere")
        assert both.returncode == 2
        assert "  a: " in both.stderr and "  b: " in both.stderr
    finally:
        first.close()
        second.close()


def test_a_stalled_run_is_said_and_still_waited_on(service, waiting, tmp_path):
    run = service.start("slow")
    first, _ = service.step(run, "First")
    follow = waiting(str(tmp_path / "storage"), "--wait", run, "--stall-after", "1")
    wait_for(lambda: follow.saw("running    First"))
    service.cmd("complete_step", first)  # between steps: nothing saved for a while
    wait_for(lambda: follow.saw("⏸ stalled: no change for over 1 s"))
    service.step(run, "Second")
    wait_for(lambda: follow.saw("● running: a step is running"))
    service.cmd("finish", run, "completed")
    code, lines, stderr = follow.result()
    assert code == 0, (lines, stderr)


def test_wait_refuses_an_empty_execution_and_options_it_would_ignore(fixture_store):
    empty = wait_once(str(fixture_store), "--wait", " ")
    assert empty.returncode == 2 and empty.stderr.startswith(
        "stepflow-top: --wait needs an execution: an id, an id prefix, a name or latest")
    ignored = wait_once(str(fixture_store), "--wait", "latest", "--json")
    assert ignored.returncode == 2
    assert "--json is not used by --wait" in ignored.stderr


def test_a_run_saved_by_a_sigterm_restart_is_lost(service, waiting, tmp_path):
    root = tmp_path / "storage"
    run = service.start("backup")
    service.step(run, "Copy")
    follow = waiting(str(root), "--wait", run)
    wait_for(lambda: follow.saw("running    Copy"))
    service.cmd("sigterm_save")  # stored 'running', a word it writes at no other time
    service.close()
    with ServiceWriter(root):  # a new service attaches and never re-saves the run
        code, lines, stderr = follow.result()
    assert code == 1, (lines, stderr)
    assert lines[-1].startswith(f"◌ backup ({run[:8]}) is lost: ")


def test_a_run_deleted_while_watched_exits_1(service, waiting, tmp_path):
    run = service.start("short-lived")
    service.step(run, "Only")
    follow = waiting(str(tmp_path / "storage"), "--wait", run)
    wait_for(lambda: follow.saw("running    Only"))
    service.cmd("delete", run)  # housekeeping, or an operator
    code, lines, stderr = follow.result()
    assert code == 1, (lines, stderr)
    assert lines[-1] == f"⊘ execution {run} was deleted from the store"


def probe_processes(parent: int) -> list[int]:
    """Pids of the probe subprocesses (``stepflow_top.wal.probe``) of ``parent``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # not a process, or it ended while being read
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and b"stepflow_top.wal.probe" in command:
            found.append(int(proc.name))
    return found


def test_wait_reads_through_one_probe_process_in_any_number_of_stores(tmp_path):
    services = [ServiceWriter(tmp_path / name) for name in ("a", "b", "c")]
    try:
        run = services[1].start("sync")
        services[1].step(run, "Fetch")
        follow = Waiting(*(str(tmp_path / n) for n in ("a", "b", "c")), "--wait", run)
        try:
            wait_for(lambda: follow.saw("running    Fetch"))
            services[1].step(run, "Merge")  # seen through the change feed: it has started
            wait_for(lambda: follow.saw("running    Merge"))
            assert len(probe_processes(follow.process.pid)) == 1
            services[1].cmd("finish", run, "completed")
            code, lines, stderr = follow.result()
            assert code == 0, (lines, stderr)
        finally:
            follow.stop()
    finally:
        for service in services:
            service.close()
