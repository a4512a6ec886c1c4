"""A scripted StepFlow Monitor service in a separate process, one command at a time.

Run as a script (``python tests/service_writer.py ROOT [--style replace|update]``) it
opens ROOT as the real service does at start-up (creating the storage root and schema if
needed: :func:`stepflow_top.demo.store.open_store`), answers ``{"ok": true, "ready":
true, "pid": N}``, then reads one command per line on stdin (words as a shell splits
them) and answers one JSON line once what the command saves is committed. The saves and
what the service keeps in memory are :class:`stepflow_top.demo.engine.Engine`'s, which
says what each marker does on disk. The connection stays open between commands, as the
service's does. Timestamps are local time in the process's time zone: its ``TZ``
environment variable (applied with ``time.tzset()``).

    open                           open the store again, as a service start does
    close                          close the connection (the last close deletes -wal/-shm);
                                   the runs in flight are forgotten, as a stopped service's
    style replace|update           INSERT OR REPLACE saves (new rowid) or UPDATE (rowid kept)
    start NAME [USER]              -> {"id"}: execution saved pending
    step EXEC_ID MARKER            -> {"id", "index"}: STEP_START:MARKER (name and
                                   [key=value] parameters); the previous step is not re-saved
    log EXEC_ID TEXT               -> {"step_id"}: an output line, kept in memory for the
                                   current step (null: dropped); written at the step's next save
    meta STEP_ID JSON              one META:key:value per key of the JSON object, one save each
    complete_step STEP_ID          STEP_COMPLETE
    fail_step STEP_ID CODE MESSAGE STEP_ERROR:MESSAGE, saved with exit code CODE (the service: 1)
    artifact EXEC_ID NAME [STEP_ID] [bytes=N]
                                   -> {"id"}: ARTIFACT:NAME; with bytes=N the file exists
                                   (N bytes) and is copied, else file_size 0
    finish EXEC_ID completed|failed [EXIT]   the script exits (EXIT: 0, or 1 when failed)
    cancel EXEC_ID                 cancelled: the script exits with -15
    timeout EXEC_ID                timed out: exit code -1, "Execution timed out"
    sigterm_save [EXEC_ID...]      a SIGTERM shutdown's saves: the runs (default: all in
                                   flight) saved as held in memory, status 'running'
    delete EXEC_ID...              -> {"deleted"}: housekeeping deletes rows and folders
    housekeep_newest N             -> {"deleted"}: the N newest executions (by created_at)
    housekeep DAYS                 -> {"deleted"}: executions created more than DAYS ago
    quit

A SIGKILL (``ServiceWriter.kill``) is the crash: rows stay as saved, -wal/-shm stay.
Imported, it provides :class:`ServiceWriter`, the test-side handle.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stepflow_top.demo.engine import Engine, RunState, StepState
from stepflow_top.demo.store import open_store


class _Service:
    """The command interpreter around one engine and its connection."""

    def __init__(self, root: Path, style: str) -> None:
        self.root = root
        self.style = style
        self.engine: Engine | None = None
        self.open()

    def open(self) -> None:
        if self.engine is not None:
            raise ValueError("the store is already open")
        self.engine = Engine(self.root, open_store(self.root), style=self.style)

    def close(self) -> None:
        self._engine().conn.close()
        self.engine = None

    def _engine(self) -> Engine:
        if self.engine is None:
            raise ValueError("the store is closed (send open)")
        return self.engine

    def _current(self, step_id: str) -> tuple[RunState, StepState]:
        run, step = self._engine().step(step_id)
        if run.current is not step:
            raise ValueError(f"step {step_id} is not its execution's current step "
                             f"(the service ignores markers for it)")
        return run, step

    def do(self, words: list[str]) -> dict[str, object]:
        command, args = words[0], words[1:]
        handler = getattr(self, f"cmd_{command}", None)
        if handler is None:
            raise ValueError(f"unknown command {command}")
        return handler(*args) or {}

    def cmd_open(self) -> None:
        self.open()

    def cmd_close(self) -> None:
        self.close()

    def cmd_style(self, style: str) -> None:
        self._engine().saver.style = style
        self.style = style

    def cmd_start(self, name: str, user: str | None = None) -> dict[str, object]:
        run = self._engine().start(name=name, command=f"python3 /workspace/{name}.py",
                                   user=user)
        return {"id": run.id}

    def cmd_step(self, execution_id: str, marker: str) -> dict[str, object]:
        engine = self._engine()
        step = engine.step_start(engine.run(execution_id), marker)
        return {"id": step.id, "index": step.row["step_index"]}

    def cmd_log(self, execution_id: str, text: str) -> dict[str, object]:
        engine = self._engine()
        step = engine.output(engine.run(execution_id), text)
        return {"step_id": None if step is None else step.id}

    def cmd_meta(self, step_id: str, pairs: str) -> None:
        run, _step = self._current(step_id)
        for key, value in json.loads(pairs).items():
            self._engine().meta(run, key, value)

    def cmd_complete_step(self, step_id: str) -> None:
        run, _step = self._current(step_id)
        self._engine().step_complete(run)

    def cmd_fail_step(self, step_id: str, code: str, message: str) -> None:
        run, _step = self._current(step_id)
        self._engine().step_error(run, message, int(code))

    def cmd_artifact(self, execution_id: str, name: str, *rest: str) -> dict[str, object]:
        size: int | None = None
        step_id: str | None = None
        for word in rest:
            if word.startswith("bytes="):
                size = int(word[len("bytes="):])
            else:
                step_id = word
        engine = self._engine()
        run = engine.run(execution_id)
        with tempfile.TemporaryDirectory(prefix="service-writer-") as scratch:
            produced: Path | None = None
            if size is not None:  # the script left the file: the service copies it
                produced = Path(scratch) / name
                produced.write_bytes(b"x" * size)
            artifact_id = engine.artifact(run, name, f"{name} artifact", step_id=step_id,
                                          produced=produced)
        return {"id": artifact_id}

    def cmd_finish(self, execution_id: str, status: str, code: str | None = None) -> None:
        exit_code = int(code) if code is not None else (0 if status == "completed" else 1)
        if status not in ("completed", "failed") or (exit_code == 0) != (status == "completed"):
            raise ValueError(f"finish {status} with exit code {exit_code} is not what the "
                             f"service stores (completed is exit code 0, failed any other)")
        engine = self._engine()
        engine.exit(engine.run(execution_id), exit_code)

    def cmd_cancel(self, execution_id: str) -> None:
        engine = self._engine()
        engine.cancel(engine.run(execution_id))

    def cmd_timeout(self, execution_id: str) -> None:
        engine = self._engine()
        engine.timeout(engine.run(execution_id))

    def cmd_sigterm_save(self, *execution_ids: str) -> None:
        engine = self._engine()
        for execution_id in execution_ids or list(engine.runs):
            engine.shutdown_save(engine.run(execution_id))

    def cmd_delete(self, *execution_ids: str) -> dict[str, object]:
        return {"deleted": self._engine().delete(execution_ids)}

    def cmd_housekeep_newest(self, count: str) -> dict[str, object]:
        engine = self._engine()
        ids = [i for (i,) in engine.conn.execute(
            "SELECT id FROM executions ORDER BY created_at DESC LIMIT ?", (int(count),))]
        return {"deleted": engine.delete(ids)}

    def cmd_housekeep(self, days: str) -> dict[str, object]:
        return {"deleted": self._engine().housekeep(float(days))}


def _serve(root: Path, style: str) -> None:
    time.tzset()
    service = _Service(root, style)
    print(json.dumps({"ok": True, "ready": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        words = shlex.split(line)
        if not words:
            continue
        if words == ["quit"]:
            break
        try:
            reply: dict[str, object] = {"ok": True, **service.do(words)}
        except (ValueError, KeyError, TypeError, OSError, sqlite3.Error) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            reply = {"ok": False, "error": f"{type(exc).__name__}: {message}"}
        print(json.dumps(reply), flush=True)
    if service.engine is not None:
        service.close()


class ServiceWriter:
    """Test-side handle on a service writer process.

    ``root`` is the storage root; ``style`` the save style at start; ``tz`` the process's
    ``TZ`` (default: inherited); ``timeout_s`` the deadline (seconds) for every answer.
    Construction waits for the store to be open. :meth:`cmd` sends one command and
    returns its answer; ``RuntimeError`` when the command failed or the process ended,
    ``TimeoutError`` when it did not answer in time.
    """

    def __init__(self, root: str | os.PathLike[str], *, style: str = "replace",
                 tz: str | None = None, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        env = dict(os.environ)
        if tz is not None:
            env["TZ"] = tz
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), os.fspath(root), "--style", style],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self._buffer = b""
        try:
            self._answer("start-up")
        except BaseException:
            self.kill()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cmd(self, *words: object) -> dict:
        """Send one command (``cmd("step", execution_id, "Build [duration=60]")``)."""
        line = shlex.join(str(word) for word in words)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()
        return self._answer(line)

    def _answer(self, what: str) -> dict:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"service writer did not answer {what!r}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"service writer ended on {what!r}: {self._stderr()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"service writer failed on {what!r}: {reply.get('error')}")
        return reply

    def _stderr(self) -> str:
        """What the process said on stderr, once it has ended (stdout closed)."""
        try:
            self.proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode("utf-8", "replace").strip()

    def start(self, name: str, user: str | None = None) -> str:
        """``start``; returns the execution id."""
        return str(self.cmd("start", name, *([user] if user else []))["id"])

    def step(self, execution_id: str, marker: str) -> tuple[str, int]:
        """``step``; returns the step id and index."""
        reply = self.cmd("step", execution_id, marker)
        return str(reply["id"]), int(reply["index"])

    def kill(self) -> None:
        """SIGKILL the process, as a crash: no save, no close, -wal/-shm left behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=self.timeout_s)
        self._close_pipes()

    def close(self) -> None:
        """Quit: the process closes its connection (if open) and exits."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=self.timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass

    def __enter__(self) -> "ServiceWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--style", choices=("replace", "update"), default="replace")
    arguments = parser.parse_args()
    _serve(arguments.root, arguments.style)
