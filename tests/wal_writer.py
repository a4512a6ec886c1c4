"""A scripted SQLite writer that runs in a separate process, step by step.

Run as a script (``python tests/wal_writer.py DB``) it reads one command per line
on stdin and answers one JSON line on stdout once the command is done, so a test can
interleave the writer's actions with its own observations deterministically:

    open AUTOCHECKPOINT [TIMEOUT_MS]   connect, journal_mode=WAL, wal_autocheckpoint=N
    write N [BYTES]                    N commits, each inserting one row of BYTES bytes
    ckpt MODE                          PRAGMA wal_checkpoint(MODE) -> [busy, log, checkpointed]
    paced N PER_S EVERY MODE           N commits at PER_S commits/s, wal_checkpoint(MODE) after
                                       every EVERY-th commit -> "checkpoints": [[busy, log, done]..]
    sql STATEMENT                      run one SQL statement (autocommit)
    close                              close the connection (the last one deletes -wal/-shm)
    quit

Imported, it provides :class:`WalWriter`, the test-side handle.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def _paced(conn: sqlite3.Connection, n: int, per_s: float, every: int, mode: str) -> list:
    # Commits on a fixed schedule (not sleep-after-commit), so the rate holds however
    # long a commit or checkpoint takes.
    start = time.monotonic()
    done = []
    for i in range(1, n + 1):
        delay = start + i / per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        conn.execute("INSERT INTO t(v) VALUES (randomblob(100))")
        if i % every == 0:
            done.append(list(conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()))
    return done


def _serve(db: str) -> None:
    conn: sqlite3.Connection | None = None
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        reply: dict = {"ok": True}
        try:
            cmd = words[0]
            if cmd == "open":
                timeout = int(words[2]) / 1000 if len(words) > 2 else 5.0
                conn = sqlite3.connect(db, isolation_level=None, timeout=timeout)
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                conn.execute(f"PRAGMA wal_autocheckpoint={int(words[1])}").fetchall()
                conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
            elif cmd == "write":
                size = int(words[2]) if len(words) > 2 else 100
                assert conn is not None
                for _ in range(int(words[1])):
                    conn.execute("INSERT INTO t(v) VALUES (randomblob(?))", (size,))
            elif cmd == "paced":
                assert conn is not None
                reply["checkpoints"] = _paced(conn, int(words[1]), float(words[2]),
                                              int(words[3]), words[4].upper())
            elif cmd == "sql":
                assert conn is not None
                conn.execute(line.split(None, 1)[1]).fetchall()
            elif cmd == "ckpt":
                assert conn is not None
                reply["result"] = list(
                    conn.execute(f"PRAGMA wal_checkpoint({words[1].upper()})").fetchone())
            elif cmd == "close":
                if conn is not None:
                    conn.close()
                conn = None
            elif cmd == "quit":
                break
            else:
                reply = {"ok": False, "error": f"unknown command {cmd}"}
        except Exception as e:  # report, keep serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    if conn is not None:
        conn.close()


class WalWriter:
    """Test-side handle on the writer process; ``cmd()`` waits for the answer (with a
    deadline, no sleeps)."""

    def __init__(self, db: str | os.PathLike[str], timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), os.fspath(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def cmd(self, line: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"writer did not answer {line!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                break
        reply = json.loads(self.proc.stdout.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"writer failed on {line!r}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=self.timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> "WalWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _serve(sys.argv[1])
