"""The integrity runner: copy-then-check, results instead of tracebacks, cancellation,
the stepped copy's restart limit, and no change to the database."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest
from stepflow_top.wal.integrity import (
    CHECKS,
    CheckResult,
    CopyTask,
    IntegrityRunner,
    State,
    run_integrity,
)
from stepflow_top.wal.sqlite_text import per_table
from wal_writer import WalWriter


def make_db(path: Path, rows: int = 3000, wal: bool = True) -> Path:
    """A small static database (closed again before any check runs)."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("CREATE TABLE executions(id TEXT PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE steps(id TEXT PRIMARY KEY, execution_id TEXT NOT NULL "
                 "REFERENCES executions(id), v TEXT)")
    conn.execute("CREATE INDEX steps_v ON steps(v)")
    conn.execute("INSERT INTO executions VALUES ('e1', 'one')")
    conn.executemany("INSERT INTO steps VALUES (?, 'e1', ?)",
                     [(f"s{i:05d}", "x" * 50 + str(i)) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_healthy_database_passes_and_is_not_changed(tmp_path: Path) -> None:
    db = make_db(tmp_path / "ok.db")
    before = digest(db)
    seen: list[tuple[float, str]] = []
    report = run_integrity(db, CHECKS, progress=lambda f, p: seen.append((f, p)))
    assert report.ok, report
    assert [r.name for r in report.results] == list(CHECKS)
    assert all(r.status == "ok" and r.details == [] for r in report.results)
    assert report.copy_target == "memory" and report.copy_bytes == db.stat().st_size
    assert report.snapshot_s > 0
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert digest(db) == before
    d = report.to_dict()
    assert d["ok"] is True and {c["name"] for c in d["checks"]} == set(CHECKS)


def test_corrupted_copy_names_page_and_table(tmp_path: Path) -> None:
    db = make_db(tmp_path / "bad.db", wal=False)
    conn = sqlite3.connect(db)
    leaf = conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'steps' AND pagetype = 'leaf' "
        "ORDER BY pageno LIMIT 1 OFFSET 2").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:  # overwrite the cell pointer array of a table leaf
        f.seek((leaf - 1) * page_size + 8)
        f.write(b"\xff" * 64)

    report = run_integrity(db, ("quick_check", "integrity_check"))
    assert not report.ok
    assert report.state is State.CRITICAL and report.to_dict()["exit_code"] == 2
    for r in report.results:
        assert r.status == "failed" and not r.ok and r.severity is State.CRITICAL
        # SQLite either lists the damaged cells (page named, table added by the runner)
        # or aborts the check; then the runner checks table by table to name it.
        assert any((f"page {leaf}" in line and "(table steps)" in line)
                   or line.startswith("table steps: ") for line in r.details), r.details

    # The table-by-table fallback on its own names the damaged table.
    conn = sqlite3.connect(db)
    try:
        lines = [row[0] for row in per_table(conn, "quick_check")]
    finally:
        conn.close()
    assert any(line.startswith("table steps: ") for line in lines)
    assert not any(line.startswith("table executions: ") for line in lines)


def test_foreign_key_violation(tmp_path: Path) -> None:
    db = make_db(tmp_path / "fk.db", rows=10)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO steps VALUES ('orphan', 'no-such-execution', 'v')")
    conn.commit()
    conn.close()
    [r] = run_integrity(db, ("foreign_key_check",)).results
    assert r.status == "failed"
    assert len(r.details) == 1
    assert "steps rowid" in r.details[0] and "executions" in r.details[0]


def test_unopenable_databases_give_error_results(tmp_path: Path) -> None:
    [r] = run_integrity(tmp_path / "missing.db").results
    assert r.status == "error" and "no such file" in r.details[0]
    assert r.severity is State.UNKNOWN and r.to_dict()["severity"] == "UNKNOWN"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database " * 100)
    [r] = run_integrity(junk).results
    assert r.status == "error" and "not a SQLite database" in r.details[0]
    with pytest.raises(ValueError, match="unknown check"):
        run_integrity(junk, ("vacuum",))


def test_cancel_and_deadline(tmp_path: Path) -> None:
    db = make_db(tmp_path / "c.db")
    stop = threading.Event()
    stop.set()
    report = run_integrity(db, CHECKS, cancel=stop)
    assert [r.status for r in report.results] == ["cancelled"] * 3
    assert report.state is State.CANCELLED and not report.ok  # no problem, not OK either
    assert all(r.severity is State.CANCELLED and not r.findings for r in report.results)

    report = run_integrity(db, ("quick_check",), deadline_s=0.0)
    assert report.results[0].status == "timeout"

    runner = IntegrityRunner(db)

    def cancel_during_check(fraction: float, phrase: str) -> None:
        if phrase.startswith("integrity check"):
            runner.cancel()

    report = runner.run(("quick_check", "integrity_check"), progress=cancel_during_check)
    assert [r.status for r in report.results] == ["ok", "cancelled"]
    # The runner is reusable after a cancel.
    assert runner.run(("quick_check",)).ok


def test_copy_to_a_temporary_file(tmp_path: Path) -> None:
    db = make_db(tmp_path / "f.db")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    report = run_integrity(db, CHECKS, memory_limit_bytes=0, temp_dir=str(tmp))
    assert report.ok and report.copy_target == "file"
    assert list(tmp.iterdir()) == []  # removed afterwards


def test_stepped_copy_gives_up_instead_of_holding_a_long_snapshot(tmp_path: Path) -> None:
    """Forced into steps (tiny snapshot budget), a copy restarts whenever the writer
    commits between two steps; the runner stops after max_restarts with a clear error."""
    db = make_db(tmp_path / "s.db", rows=6000)  # several steps of 64 pages
    with WalWriter(db) as w:
        w.cmd("open 0")
        runner = IntegrityRunner(db, max_snapshot_s=1e-9, max_restarts=2)
        quiet = runner.run(("quick_check",))
        assert quiet.ok and quiet.snapshot_s > 0  # no writes: the steps converge

        def commit_between_steps(fraction: float, phrase: str) -> None:
            if phrase.startswith("copying"):
                w.cmd("write 1")

        report = runner.run(("quick_check",), progress=commit_between_steps)
        [r] = report.results
        assert r.status == "error" and "max_snapshot_s" in r.details[0]


def test_live_wal_database_with_a_writer(tmp_path: Path) -> None:
    db = make_db(tmp_path / "live.db", rows=100)
    with WalWriter(db) as w:
        w.cmd("open 0")
        w.cmd("write 20 2000")  # frames in the -wal, not yet checkpointed
        report = run_integrity(db, CHECKS)
        assert report.ok
        busy, log, done = w.cmd("ckpt RESTART")["result"]
        assert busy == 0 and log == done  # the runner left no snapshot behind


def test_a_temporary_copy_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    """mkstemp's OSError (a full /tmp, no permission, a missing folder) becomes one
    result line saying where and what to do, not a traceback."""
    db = make_db(tmp_path / "t.db", rows=10)
    report = run_integrity(db, CHECKS, memory_limit_bytes=0,
                           temp_dir=str(tmp_path / "no-such-folder"))
    assert report.state is State.UNKNOWN
    for r in report.results:
        assert r.status == "error" and len(r.details) == 1
        assert "cannot make a temporary copy" in r.reason
        assert str(tmp_path / "no-such-folder") in r.reason and "TMPDIR" in r.reason


def test_further_checks_run_on_the_private_copy(tmp_path: Path) -> None:
    """A CopyTask reads the copy, not the live database, and shares the progress and
    the stop of the run; when the copy cannot be made its names get that reason."""
    db = make_db(tmp_path / "c.db", rows=50)
    seen: list[str] = []

    def count_steps(copy, progress, stop):
        progress(0.5, "counting")
        [(n,)] = copy.execute("SELECT count(*) FROM steps").fetchall()
        seen.append(copy.execute("PRAGMA database_list").fetchall()[0][2])
        return [CheckResult.of("steps_counted", [], 0.0, notes=[f"{n} steps"])]

    task = CopyTask(("steps_counted",), count_steps)
    progress: list[str] = []
    report = run_integrity(db, ("quick_check",), then=task,
                           progress=lambda f, p: progress.append(p))
    assert [r.name for r in report.results] == ["quick_check", "steps_counted"]
    assert report.results[1].notes == ("50 steps",) and report.ok
    assert seen == [""]  # an in-memory copy has no file name
    assert "counting" in progress

    [q, t] = run_integrity(tmp_path / "missing.db", ("quick_check",), then=task).results
    assert t.name == "steps_counted" and t.status == "error" and "no such file" in t.reason
