"""Every line ``--events`` prints validates against the JSON Schema shipped in the
package, and a real run produces every event type the schema names.

Two stores in one stream: ``live``, written by a scripted StepFlow service
(tests/service_writer.py) and a checkpointing process, both separate processes; and
``old``, a copy of the fixture in rollback-journal mode (a ``not_wal`` warning), whose
database file is replaced during the run."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import FIXTURE, copy_store, wait_for
from service_writer import ServiceWriter

jsonschema = pytest.importorskip(
    "jsonschema", reason="jsonschema is missing: pip install -e '.[test]'")

SCHEMA = json.loads(resources.files("stepflow_top").joinpath(
    "schemas/events.schema.json").read_text(encoding="utf-8"))
TYPES = SCHEMA["properties"]["type"]["enum"]

# A second writer on the live store that checkpoints on command. ``interrupt`` fills
# the WAL and interrupts a PASSIVE checkpoint from a timer until one stops part way
# (nBackfillAttempted > nBackfill in the -shm's WalCkptInfo, SQLITE_WAL.md §2).
CHECKPOINTER = r"""
import sqlite3, struct, sys, threading
db = sys.argv[1]
conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=10)
conn.execute("CREATE TABLE IF NOT EXISTS filler(v BLOB)")
FILL = ("INSERT INTO filler(v) SELECT randomblob(3000) FROM (WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c)")
def interrupted():
    with open(db + "-shm", "rb") as f:
        header = f.read(136)
    return struct.unpack_from("=I", header, 128)[0] > struct.unpack_from("=I", header, 96)[0]
print("ready", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[0] == "write":
        conn.execute(FILL, (int(words[1]),))
    elif words[0] == "ckpt":
        conn.execute(f"PRAGMA wal_checkpoint({words[1]})").fetchall()
    elif words[0] == "interrupt":
        for attempt in range(200):
            conn.execute(FILL, (2000,))
            timer = threading.Timer(0.0005 * (attempt % 20), conn.interrupt)
            timer.start()
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.OperationalError:
                pass
            timer.join()
            if interrupted():
                break
        else:
            sys.exit("no checkpoint was interrupted")
    print("done", flush=True)
"""


class Checkpointer:
    def __init__(self, database: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", CHECKPOINTER, str(database)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def __call__(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "done", command

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


class Stream:
    """``stepflow-top live=… old=… --events`` with its stdout lines kept as text."""

    def __init__(self, *stores: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepflow_top", *stores, "--events", "--refresh", "0.5",
             "--integrity-every", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.raw: list[str] = []
        self._reader = threading.Thread(target=lambda: self.raw.extend(self.process.stdout),
                                        daemon=True)
        self._reader.start()

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.raw)]

    def wait(self, timeout: float = 30, **fields) -> dict:
        def found():
            return next((e for e in self.events
                         if all(e.get(k) == v for k, v in fields.items())), None)
        return wait_for(found, timeout=timeout)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.process.stderr.read()


def close_until_the_wal_goes(service: ServiceWriter, database: Path) -> None:
    """Close the service's connection, the last one: SQLite then checkpoints and deletes
    the -wal, unless a reader (a scheduled integrity check's copy) holds the database
    at that moment; then open and close again."""
    wal = Path(f"{database}-wal")
    for _attempt in range(20):
        service.cmd("close")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if not wal.exists():
                return
            time.sleep(0.05)
        service.cmd("open")
    pytest.fail(f"{wal} stayed after 20 closes")


@pytest.fixture
def old_store(tmp_path) -> Path:
    """The fixture in rollback-journal mode, and a second copy to replace it with."""
    root = copy_store(FIXTURE, tmp_path / "old")
    database = root / "database" / "stepflow.db"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    shutil.copyfile(database, tmp_path / "replacement.db")
    return root


def test_every_line_matches_the_schema_and_every_type_appears(tmp_path, old_store):
    service = ServiceWriter(tmp_path / "live")
    database = tmp_path / "live" / "database" / "stepflow.db"
    stream = Stream(f"live={tmp_path / 'live'}", f"old={old_store}")
    checkpointer = None
    try:
        stream.wait(store="old", type="warning", code="not_wal")
        tries = iter(range(1_000_000))

        def reported_a_run() -> bool:  # then the live feed has its baseline
            if stream.events and any(e["store"] == "live" and e["type"] == "execution"
                                     for e in stream.events):
                return True
            if next(tries) % 10 == 0:
                service.cmd("finish", service.start("warm-up"), "completed")
            return False

        wait_for(reported_a_run, timeout=30, interval=0.1)
        run = service.start("nightly-etl")
        extract, _ = service.step(run, "Extract")
        service.cmd("complete_step", extract)
        service.cmd("finish", run, "completed")
        stream.wait(type="execution", id=run, status="completed")
        doomed = service.start("doomed")
        stream.wait(type="execution", id=doomed)
        service.cmd("delete", doomed)
        stream.wait(type="execution_deleted", id=doomed)
        for name in ("old-1", "old-2"):
            finished = service.start(name)
            service.cmd("finish", finished, "completed")
            stream.wait(type="execution", id=finished, status="completed")
        service.cmd("housekeep_newest", 2)  # finished runs: deleted unseen, then counted
        stream.wait(type="executions_deleted")
        os.replace(tmp_path / "replacement.db", old_store / "database" / "stepflow.db")
        stream.wait(store="old", type="database_replaced")

        checkpointer = Checkpointer(database)
        checkpointer("write 50")
        checkpointer("ckpt PASSIVE")
        stream.wait(type="checkpoint", kind="backfill")
        checkpointer("write 5")
        stream.wait(type="wal_reset")
        checkpointer("interrupt")
        stream.wait(type="interrupted")
        checkpointer("ckpt TRUNCATE")
        stream.wait(type="checkpoint", kind="truncate")
        checkpointer.close()
        close_until_the_wal_goes(service, database)
        stream.wait(type="wal_deleted")
        stream.wait(type="writer", attached=False)
        service.cmd("open")
        stream.wait(type="wal_created")
        stream.wait(type="integrity", store="live")
    finally:
        if checkpointer is not None:
            checkpointer.close()
        service.close()
        stderr = stream.stop()
    assert "Traceback" not in stderr, stderr
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in stream.raw:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
                  for e in validator.iter_errors(json.loads(line))]
        assert not errors, (line, errors)
    seen = {e["type"] for e in stream.events}
    assert seen == set(TYPES), set(TYPES) - seen
    assert {e["store"] for e in stream.events} == {"live", "old"}
    assert all(e["v"] == 1 for e in stream.events)


def test_the_schema_refuses_what_it_does_not_describe():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good = {"v": 1, "store": "prod", "ts": 1.5, "type": "executions_deleted", "count": 3}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "surprise": 1})
    assert not validator.is_valid({**good, "v": 2})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "store"})
    assert not validator.is_valid({**good, "type": "no_such_type"})
