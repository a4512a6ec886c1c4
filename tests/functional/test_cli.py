"""The non-interactive modes, run as a user would run them: as a separate process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
from conftest import wait_for

DATA_REPORT = "77c5563f-20ba-4823-9274-144ce96d2185"


def stepflow_top(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stepflow_top", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def test_once_json_shows_the_running_report_as_running(fixture_store, attached_service):
    result = stepflow_top(str(fixture_store), "--once", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["store"]["journal_mode"] == "wal"
    assert document["store"]["root"] == str(fixture_store)
    assert document["writer"]["attached"] is True
    assert document["writer"]["pids"] == [attached_service.pid]
    assert document["counts"]["executions"] == 3
    assert document["counts"]["by_status"] == {"completed": 2, "running": 1}
    report = next(e for e in document["executions"] if e["id"] == DATA_REPORT)
    assert (report["status"], report["stored_status"]) == ("running", "pending")
    assert (report["steps_finished"], report["steps_total"]) == (1, 2)
    assert report["current_step"] == "Data Collection"
    assert [e["name"] for e in document["executions"]] == [
        "data-report", "shell-build", "nightly-etl"]


def test_once_json_calls_the_runs_of_a_killed_service_lost(fixture_store, attached_service):
    attached_service.kill()  # SIGKILL: its -wal and -shm stay behind, its locks go
    document = json.loads(stepflow_top(str(fixture_store), "--once", "--json").stdout)
    assert document["writer"]["attached"] is False and document["writer"]["pids"] == []
    assert document["counts"]["by_status"] == {"completed": 2, "lost": 1}
    report = next(e for e in document["executions"] if e["id"] == DATA_REPORT)
    assert (report["status"], report["inferred"]) == ("lost", "no service has the database open")


def test_once_json_execution_prints_one_run_in_full(fixture_store):
    result = stepflow_top(str(fixture_store), "--once", "--json", "--execution", DATA_REPORT)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["id"], document["status"], document["stored_status"]) == (
        DATA_REPORT, "lost", "pending")
    assert [(s["step_index"], s["name"], s["status"], s["stored_status"])
            for s in document["steps"]] == [
        (0, "Environment Verification", "completed", "completed"),
        (1, "Data Collection", "lost", "running")]
    assert {"exit_code", "error_message", "started_at", "completed_at", "duration_s",
            "metadata", "inferred"} <= set(document["steps"][0])
    assert isinstance(document["artifacts"], list)
    missing = stepflow_top(str(fixture_store), "--once", "--json", "--execution", "nope")
    assert missing.returncode == 2 and "no execution nope" in missing.stderr


def test_once_limit_and_text_output(fixture_store, attached_service):
    document = json.loads(stepflow_top(str(fixture_store), "--once", "--json", "--limit", "1").stdout)
    assert [e["name"] for e in document["executions"]] == ["data-report"]
    text = stepflow_top(str(fixture_store / "database"), "--once").stdout
    assert "● running" in text and "data-report" in text and "1/2" in text


def test_once_on_a_missing_store_exits_2_with_one_line(tmp_path):
    result = stepflow_top(str(tmp_path / "nowhere"), "--once")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no database at" in result.stderr
    assert "Traceback" not in result.stderr


def test_once_on_a_corrupt_file_exits_2_without_traceback(tmp_path):
    db = tmp_path / "stepflow.db"
    db.write_bytes(b"\x00garbage" * 512)
    result = stepflow_top(str(db), "--once", "--json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not a readable SQLite database" in result.stderr


def test_events_report_every_finished_step_of_a_live_writer(writer):
    """Every step that the writer finishes while --events runs is reported with its
    final status (an intermediate state may be skipped, a final one never)."""
    events_process = subprocess.Popen(
        [sys.executable, "-m", "stepflow_top", str(writer.root), "--events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    events: list[dict] = []
    reader = threading.Thread(
        target=lambda: events.extend(json.loads(line) for line in events_process.stdout),
        daemon=True,
    )
    reader.start()
    try:
        # Wait until two executions born after the stream started have finished.
        def finished_newborns() -> int:
            seen = list(events)
            born = {e["id"] for e in seen if e["type"] == "execution"
                    and e["previous"] is None and e["status"] == "running"}
            return sum(e["type"] == "execution" and e["id"] in born
                       and e["status"] in ("completed", "failed") for e in seen) >= 2

        wait_for(finished_newborns, timeout=90)
    finally:
        writer.stop()  # stop writing, then let the stream catch up with a last look
        events_process.terminate()
        events_process.wait(timeout=10)
        reader.join(timeout=10)
    import sqlite3

    conn = sqlite3.connect(f"file:{writer.database}?mode=ro", uri=True)
    # Executions created after the stream started: all of their life was observed.
    born = {e["id"] for e in events if e["type"] == "execution" and e["previous"] is None
            and e["status"] == "running"}
    finished_ids = born & {e["id"] for e in events if e["type"] == "execution"
                           and e["status"] in ("completed", "failed")}
    assert finished_ids
    rows = conn.execute(
        f"SELECT execution_id, step_index, status FROM steps WHERE execution_id IN "
        f"({','.join('?' * len(finished_ids))})", sorted(finished_ids)).fetchall()
    conn.close()
    reported = {(e["execution_id"], e["step_index"], e["status"])
                for e in events if e["type"] == "step"}
    for row in rows:
        if row[2] in ("completed", "failed"):
            assert tuple(row) in reported, f"final step status not reported: {row}"
    for event in events:
        assert isinstance(event["ts"], float)


def test_events_stop_after_seconds_on_an_idle_store(fixture_store):
    result = stepflow_top(str(fixture_store), "--events", "--seconds", "1")
    assert result.returncode == 0 and result.stdout == ""


# -- errors for people (issue 9) ---------------------------------------------------------
def said_once(result: subprocess.CompletedProcess) -> str:
    """The one stderr line of a refused command line (no traceback, nothing on stdout)."""
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_help_names_every_mode_and_exits_0():
    result = stepflow_top("--help")
    assert result.returncode == 0
    for mode in ("--once", "--events", "--check", "--demo", "--demo-writer"):
        assert f"\n  {mode}" in result.stdout
    assert result.stdout.startswith("usage: stepflow-top [PATH...] [options]")


def test_json_without_once_or_check_is_refused(fixture_store):
    for mode in ([], ["--events"]):
        result = stepflow_top(str(fixture_store), *mode, "--json")
        assert result.returncode == 2
        assert "--json is not used by" in said_once(result)
        assert "it works with --once or --check" in result.stderr


def test_options_a_mode_would_ignore_are_refused(fixture_store):
    for args, said in ((["--events", "--limit", "5"], "--limit is not used by --events"),
                       (["--once", "--full"], "--full is not used by --once"),
                       (["--full"], "--full is not used by the monitor"),
                       (["--once", "--bell"], "--bell is not used by --once"),
                       (["--once", "--seconds", "2"], "--seconds is not used by --once"),
                       (["--events", "--speed", "2"], "--speed is not used by --events")):
        result = stepflow_top(str(fixture_store), *args)
        assert result.returncode == 2, args
        assert said in said_once(result)
    result = stepflow_top("--demo", str(fixture_store))
    assert result.returncode == 2 and "PATH is not used by --demo" in said_once(result)


def test_usage_errors_of_check_are_unknown_as_a_plugin_says_them(fixture_store):
    for args, said in ((["--limit", "5"], "--limit is not used by --check"),
                       (["--bogus"], "unrecognized arguments: --bogus"),
                       (["--once"], "not allowed with argument")):
        result = stepflow_top(str(fixture_store), "--check", *args)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert result.stdout.startswith("STEPFLOW UNKNOWN - ") and said in result.stdout
        assert result.stdout.count("\n") == 1 and "Traceback" not in result.stderr
    # Other modes keep 2 for the same mistakes.
    assert stepflow_top(str(fixture_store), "--once", "--bogus").returncode == 2


def test_a_typo_in_the_file_name_says_no_such_file(fixture_store):
    typo = fixture_store / "database" / "stepflow.dbx"
    result = stepflow_top(str(typo), "--once")
    assert result.returncode == 2
    assert said_once(result) == (
        f"stepflow-top: no such file: {typo} (did you mean stepflow.db?)\n")
    check = stepflow_top(str(typo), "--check")
    assert check.returncode == 3
    assert check.stdout.startswith(f"STEPFLOW UNKNOWN - no such file: {typo}")
    document = json.loads(stepflow_top(str(typo), "--check", "--json").stdout)
    assert document["exit_code"] == 3 and document["error"].startswith("no such file")
    # A root that is not there yet is still a store to wait for, not a typo.
    missing = stepflow_top(str(fixture_store / "later"), "--once")
    assert "no database at" in said_once(missing)


def without_file_permission_override() -> list[str]:
    """A command prefix under which this user's permission bits apply: as root, drop
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (root bypasses them otherwise)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run without root's permission override")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("closed", ["root", "database"])
def test_a_folder_without_read_permission_says_so(fixture_store, closed):
    folder = fixture_store if closed == "root" else fixture_store / "database"
    prefix = without_file_permission_override()
    os.chmod(folder, 0o000)
    try:
        for mode, code in (("--once", 2), ("--events", 2), ("--check", 3)):
            result = subprocess.run(
                [*prefix, sys.executable, "-m", "stepflow_top", str(fixture_store), mode],
                capture_output=True, text=True, timeout=60)
            said = result.stdout if mode == "--check" else said_once(result)
            assert result.returncode == code, (mode, result.stdout, result.stderr)
            assert f"cannot read the folder {folder} (permission denied)" in said
            assert "Traceback" not in result.stderr
    finally:
        os.chmod(folder, 0o755)


def test_the_script_modes_do_not_import_textual(fixture_store):
    """Start-up time is time to first rows: --once, --events and --check never load the
    TUI's toolkit."""
    code = ("import sys, io, contextlib\n"
            "from stepflow_top.cli import main\n"
            "for mode in (['--once'], ['--events', '--seconds', '0.2'], ['--check']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        main([sys.argv[1], *mode])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n")
    result = subprocess.run([sys.executable, "-c", code, str(fixture_store)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
