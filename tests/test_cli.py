"""The non-interactive modes, run as a user would run them: as a separate process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

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
