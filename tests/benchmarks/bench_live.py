#!/usr/bin/env python3
"""Live-monitoring benchmark: stepflow-top next to a plain 1-second polling reader.

Run it with the project's interpreter (the package must be importable)::

    python tests/benchmarks/bench_live.py            # full run, about 2.5 minutes
    python tests/benchmarks/bench_live.py --quick    # shorter windows, fewer repeats

It builds its own stores in a temporary folder (removed at the end, also on failure),
measures everything in this run, and prints one table (plain text, then the same as
Markdown for the README) with the target next to each figure:

1. **commit → event latency** (p50/p95). A writer subprocess (this script with the hidden
   ``--writer`` flag) writes like the StepFlow service: one connection with the service's
   pragmas (``stepflow_top.demo.writer.open_store``), every save an ``INSERT OR REPLACE``
   of a step row plus a commit, 200-400 ms apart, each changing a step's status
   (running → completed/failed), the execution row saved at creation and right after its
   last step. It records ``time.time()`` right after each commit. ``stepflow-top PATH
   --events`` and the *peer* (this script with ``--peer``: a separate process that every
   second runs ``SELECT ... FROM steps WHERE rowid > ?`` on a read-only connection and
   prints status changes, the way top-like monitors refresh) watch that store at the same
   time, after a warm-up commit proved both are looking. Each event is matched to its
   commit by (execution id, step index, status); latency is the event's ``ts`` minus the
   commit time. A save whose status was replaced before a monitor looked counts as seen by
   the event that shows its successor (how stale the monitor was). The time the line
   reached this script is reported too (it adds the query and the pipe).
2. **idle CPU**: ``stepflow-top PATH`` in a pseudo-terminal (80x24,
   ``TERM=xterm-256color``, the pty as controlling terminal), settled for 3 s, then
   utime+stime (+ reaped children) of its whole process tree from ``/proc`` over 20 s
   (10 s with ``--quick``) with no commits, as % of one core. Three TUIs over the same
   window: 1k and 100k executions with one step running (its elapsed time ticks), and a
   store where nothing runs; a peer on each. Bytes written to the terminal are noted.
3. ``stepflow-top PATH --once --json --limit 50``: median wall time over several runs on
   1k and on 100k executions (4 steps each), and the 100k/1k ratio. The peer column is
   a one-shot plain reader (``--peer-once``: newest 50 rows and counts by status).
Start-up times (3 and 4) are of the package compiled to bytecode, as ``pip install``
leaves it (``compile_bytecode``).

4. **TUI first rows and RSS**: time from spawn until the first execution row is drawn in
   the pseudo-terminal (a status word followed by an execution's name, escape sequences
   removed), and VmRSS after the first rows (the larger of then and 2 s later), on 100k
   executions / 400k steps (the target) and on 1k for comparison. The peer column is the
   poller's time to its first listing and its RSS.

Targets (issue 2, "Performance"): latency p50 ≤ 30 ms and p95 ≤ 100 ms; idle CPU < 1 % of
a core; 100k/1k ratio ≤ 1.5; first rows ≤ 1 s; RSS ≤ 120 MB.
"""

from __future__ import annotations

import argparse
import atexit
import compileall
import datetime as _dt
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_STATUSES = rb"(?:running|completed|failed|pending|stalled|cancelled|unknown)"

# --------------------------------------------------------------------------- helpers


def _iso(seconds: float) -> str:
    """Local time, ISO-8601 without zone, with microseconds (as the service writes)."""
    return _dt.datetime.fromtimestamp(seconds).isoformat(timespec="microseconds")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def compile_bytecode(package_dir: Path) -> None:
    """Compile ``package_dir``'s modules to bytecode once, as ``pip install`` does when it
    installs the package. An editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (as
    on this project's machine) would otherwise compile every module from source at each
    start: measured about 140 ms of each start-up, which no installed copy pays."""
    compileall.compile_dir(str(package_dir), quiet=1)


def stepflow_top_argv() -> list[str]:
    """The ``stepflow-top`` console script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).parent / "stepflow-top"
    if script.exists():
        return [str(script)]
    found = shutil.which("stepflow-top")
    return [found] if found else [sys.executable, "-m", "stepflow_top"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TERM"] = "xterm-256color"
    env["COLUMNS"], env["LINES"] = "80", "24"
    env.pop("NO_COLOR", None)
    env.pop("TEXTUAL", None)  # no devtools
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------- processes

_CHILDREN: list[subprocess.Popen] = []
_FDS: list[int] = []


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    """Popen in its own session (so the whole group can be killed), remembered for
    clean-up."""
    kwargs.setdefault("start_new_session", True)
    kwargs.setdefault("env", child_env())
    proc = subprocess.Popen(argv, **kwargs)
    _CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 3.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
    # Descendants that outlived their leader (same group) go too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def cleanup() -> None:
    while _CHILDREN:
        stop(_CHILDREN.pop())
    while _FDS:
        try:
            os.close(_FDS.pop())
        except OSError:
            pass


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant (from the ppid field of /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, ()))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime summed over a process tree (reaped children's time
    lands in their parent's cutime/cstime, so exits inside the window are counted)."""
    ticks = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields:
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLK_TCK


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class LineReader:
    """Collects a child's stdout lines with the wall time each arrived."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[tuple[float, dict]] = []
        self.other: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            arrived = time.time()
            try:
                data = json.loads(raw)
            except ValueError:
                self.other.append(raw.decode("utf-8", "replace").rstrip())
                continue
            with self.cond:
                self.lines.append((arrived, data))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for _arrived, data in self.lines[seen:]:
                    if predicate(data):
                        return data
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.2))


_ANSI = re.compile(
    rb"\x1b\[[0-9;?<>=!$ ]*[@-~]"      # CSI (incl. DECRQM "$p")
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    rb"|\x1bP[^\x1b]*\x1b\\"            # DCS
    rb"|\x1b[()*+][0-9A-Za-z]|\x1b[=>78cDEHMNOZ]"
)


class PtyApp:
    """A TUI in its own pseudo-terminal (80x24, xterm-256color, controlling tty).

    A thread drains the terminal (a TUI blocks when nobody reads it), counts the bytes
    and notes when ``pattern`` first appears in the output with escape sequences removed.
    """

    def __init__(self, argv: list[str], pattern: re.Pattern[bytes], rows: int = 24,
                 cols: int = 80) -> None:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        _FDS.append(master)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.pattern = pattern
        self.bytes_out = 0
        self.first_match: float | None = None
        self.found = threading.Event()
        self._tail = b""
        #: Set to a bytearray to record the raw output from then on.
        self.recording: bytearray | None = None
        #: While recording: (end offset in ``recording``, ``time.time()``) of each read.
        self.arrivals: list[tuple[int, float]] = []
        self.master = master
        setsid = shutil.which("setsid")
        # setsid --ctty makes the pty the controlling terminal, as in a real terminal;
        # not being a group leader, it execs in place (the TUI keeps the Popen pid).
        prefix = [setsid, "--ctty"] if setsid else []
        self.t0 = time.monotonic()
        self.proc = spawn(prefix + argv, stdin=slave, stdout=slave, stderr=slave,
                          start_new_session=not setsid, close_fds=True)
        os.close(slave)
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
            except (OSError, ValueError):
                return
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes_out += len(chunk)
            if self.recording is not None:
                self.recording += chunk
                self.arrivals.append((len(self.recording), time.time()))
            if self.first_match is None:
                self._tail = (self._tail + chunk)[-65536:]
                if self.pattern.search(_ANSI.sub(b"", self._tail)):
                    self.first_match = time.monotonic() - self.t0
                    self.found.set()

    def close(self) -> None:
        stop(self.proc)
        if self.proc in _CHILDREN:
            _CHILDREN.remove(self.proc)
        self.thread.join(2)
        try:
            os.close(self.master)
            _FDS.remove(self.master)
        except (OSError, ValueError):
            pass


def first_rows_pattern(db: Path) -> re.Pattern[bytes]:
    """A status word followed by one of the newest executions' names: a drawn row."""
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(db))}?mode=ro", uri=True)
    try:
        names = {r[0] for r in conn.execute(
            "SELECT name FROM executions ORDER BY created_at DESC LIMIT 20")}
    finally:
        conn.close()
    # A short prefix: at 80 columns the name column may cut a name to a few characters.
    alternatives = b"|".join(re.escape(n[:6].encode()) for n in sorted(names))
    return re.compile(PAGE_STATUSES + rb"\*?\s+(?:" + alternatives + rb")")


# --------------------------------------------------------------------------- writer

STEP_SQL = (
    "INSERT OR REPLACE INTO steps (id, execution_id, name, description, step_index, status, "
    "exit_code, error_message, created_at, started_at, completed_at, estimated_duration, "
    "stop_on_error, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EXECUTION_SQL = (
    "INSERT OR REPLACE INTO executions (id, name, command, working_directory, status, "
    "exit_code, error_message, created_at, started_at, completed_at, environment, user_name, "
    "tags, total_steps, completed_steps, current_step_index, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _upsert(sql: str) -> str:
    """``INSERT OR REPLACE`` turned into an UPDATE-style save that keeps the rowid
    (another service version or a repair script), as an upsert on ``id``."""
    columns = sql.split("(", 1)[1].split(")", 1)[0]
    names = [c.strip() for c in columns.split(",") if c.strip() != "id"]
    return (sql.replace("INSERT OR REPLACE INTO", "INSERT INTO")
            + " ON CONFLICT(id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in names))


def writer_main(root: Path, commits: int, seed: int, style: str = "replace") -> int:
    """Hidden ``--writer`` mode: a service-like writer driven over stdin/stdout.
    ``style`` "update" saves rows in place (rowid kept) instead of INSERT OR REPLACE.

    Prints ``{"ready"}`` once the store exists. Each ``warmup`` line on stdin commits a
    new running step of a warm-up execution and prints its key; ``go`` starts the timed
    saves; each save prints ``{"t", "key", "measured"}`` with ``t`` = ``time.time()``
    right after the commit. Ends with ``{"done"}`` and closes the connection.
    """
    from stepflow_top.demo.writer import open_store

    rng = random.Random(seed)
    conn = open_store(root)
    step_sql, execution_sql = ((STEP_SQL, EXECUTION_SQL) if style == "replace"
                               else (_upsert(STEP_SQL), _upsert(EXECUTION_SQL)))

    def emit(**data) -> None:
        print(json.dumps(data), flush=True)

    def save_execution(eid: str, name: str, status: str, created: float,
                       started: float | None, ended: float | None, n_steps: int,
                       done_steps: int, exit_code: int | None) -> float:
        conn.execute(execution_sql, (
            eid, name, f"python3 /srv/bench/{name}.py", "/srv/bench", status, exit_code,
            None if exit_code in (None, 0) else f"exit status {exit_code}",
            _iso(created), None if started is None else _iso(started),
            None if ended is None else _iso(ended), json.dumps({"BENCH": "1"}), "bench",
            json.dumps(["bench"]), n_steps, done_steps, n_steps - 1 if ended else -1, "{}",
        ))
        conn.commit()
        return time.time()

    def save_step(sid: str, eid: str, index: int, status: str, started: float,
                  ended: float | None, exit_code: int | None) -> float:
        conn.execute(step_sql, (
            sid, eid, f"step_{index}", "", index, status, exit_code,
            None if exit_code in (None, 0) else f"exit status {exit_code}",
            _iso(started), _iso(started), None if ended is None else _iso(ended),
            None, 0, "{}",
        ))
        conn.commit()
        t = time.time()
        # Like the service, the step's log file is rewritten whole with each save.
        folder = root / "executions" / eid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"step_{index}_{sid}.log").write_text(f"[{_iso(t)}] step_{index} {status}\n")
        return t

    # Plan: executions of 3 steps, each step saved running then completed/failed.
    steps_per_execution = 3
    n_executions = max(1, -(-commits // (2 * steps_per_execution)))
    plan = [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"bench-{n:02d}")
            for n in range(n_executions)]
    warm_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    now = time.time()
    save_execution(warm_id, "bench-warmup", "pending", now, None, None, 0, 0, None)
    for eid, name in plan:  # created (pending) before the monitors start
        save_execution(eid, name, "pending", now, None, None, 0, 0, None)
    emit(ready=True)

    warm_steps: list[tuple[str, float]] = []
    while True:
        command = sys.stdin.readline().strip()
        if command == "warmup":
            sid, started = str(uuid.UUID(int=rng.getrandbits(128), version=4)), time.time()
            save_step(sid, warm_id, len(warm_steps), "running", started, None, None)
            emit(warmup=[warm_id, len(warm_steps), "running"])
            warm_steps.append((sid, started))
        elif command == "go":
            # Finish the warm-up run as the service would, so that the store left
            # behind (reused as "nothing running" for idle CPU) holds no live run.
            for index, (sid, started) in enumerate(warm_steps):
                save_step(sid, warm_id, index, "completed", started, time.time(), 0)
            save_execution(warm_id, "bench-warmup", "completed", now, now, time.time(),
                           len(warm_steps), len(warm_steps), 0)
            break
        else:  # end of input (the benchmark went away) or anything else: stop
            conn.close()
            return 0

    done = 0
    for eid, name in plan:
        created = time.time()
        failed_at = steps_per_execution - 1 if rng.random() < 0.3 else None
        for index in range(steps_per_execution):
            if done >= commits:
                break
            time.sleep(rng.uniform(0.2, 0.4))
            sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            started = time.time()
            t = save_step(sid, eid, index, "running", started, None, None)
            emit(t=t, key=[eid, index, "running"], measured=True)
            done += 1
            time.sleep(rng.uniform(0.2, 0.4))
            final, code = ("failed", 1) if index == failed_at else ("completed", 0)
            t = save_step(sid, eid, index, final, started, time.time(), code)
            emit(t=t, key=[eid, index, final], measured=True)
            done += 1
            if final == "failed":
                break
        # The script ended: the execution row's second (and last) save, right after.
        time.sleep(0.003)
        failed = failed_at is not None
        t = save_execution(eid, name, "failed" if failed else "completed", created, created,
                           time.time(), steps_per_execution,
                           steps_per_execution - 1 if failed else steps_per_execution,
                           1 if failed else 0)
        emit(t=t, key=["execution", eid, "failed" if failed else "completed"], measured=False)
        if done >= commits:
            break
    time.sleep(1.5)  # let the 1 s poller catch up before the connection closes
    emit(done=True)
    conn.close()
    return 0


# --------------------------------------------------------------------------- peer


def peer_main(db: Path, interval: float, once: bool) -> int:
    """Hidden ``--peer`` mode: a plain top-like reader.

    Opens ``mode=ro`` (autocommit, so no snapshot is held between polls), reads the newest
    50 executions and the counts by status (its "first screen"), then every ``interval``
    seconds runs ``SELECT ... FROM steps WHERE rowid > ?`` and prints one JSON line per
    step whose status changed. ``once``: print the first screen as JSON and exit.
    """
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(db))}?mode=ro", uri=True,
                           isolation_level=None)
    conn.execute("PRAGMA query_only=1")
    rows = conn.execute(
        "SELECT id, name, status, created_at FROM executions ORDER BY created_at DESC LIMIT 50"
    ).fetchall()
    counts = dict(conn.execute("SELECT status, count(*) FROM executions GROUP BY status"))
    if once:
        print(json.dumps({"counts": counts, "executions": [
            {"id": r[0], "name": r[1], "status": r[2], "created_at": r[3]} for r in rows]}))
        return 0
    mark = conn.execute("SELECT coalesce(max(rowid), 0) FROM steps").fetchone()[0]
    known: dict[str, str] = {}
    print(json.dumps({"ready": True, "ts": time.time(), "rows": len(rows)}), flush=True)
    next_poll = time.monotonic() + interval
    parent = os.getppid()
    while os.getppid() == parent:  # ends if the benchmark died without stopping it
        time.sleep(max(0.0, next_poll - time.monotonic()))
        next_poll += interval
        ts = time.time()
        for rowid, sid, eid, index, status in conn.execute(
            "SELECT rowid, id, execution_id, step_index, status FROM steps "
            "WHERE rowid > ? ORDER BY rowid", (mark,)
        ).fetchall():
            mark = max(mark, rowid)
            if known.get(sid) != status:
                print(json.dumps({"ts": ts, "type": "step", "execution_id": eid,
                                  "step_index": index, "status": status,
                                  "previous": known.get(sid)}), flush=True)
            known[sid] = status
    return 0


# --------------------------------------------------------------------------- measurements


@dataclass
class Results:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, ours: str, peer: str, target: str, met: bool | None) -> None:
        verdict = "—" if met is None else ("yes" if met else "NO")
        self.rows.append((figure, ours, peer, target, verdict))


def fmt_ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def _step_key(data: dict) -> tuple | None:
    if data.get("type") != "step":
        return None
    return (data.get("execution_id"), data.get("step_index"), data.get("status"))


def measure_latency(tmp: Path, commits: int, res: Results, style: str = "replace") -> Path:
    """Figure 1, with the writer saving rows ``style`` ("replace": INSERT OR REPLACE as
    the service does; "update": in place, rowid kept). Returns the storage root (reused,
    nothing running, for idle CPU)."""
    root = tmp / ("live" if style == "replace" else f"live-{style}")
    db = root / "database" / "stepflow.db"
    writer = spawn([sys.executable, str(HERE), "--writer", str(root), "--commits", str(commits),
                    "--save-style", style], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    wlines = LineReader(writer)
    if wlines.wait_for(lambda d: d.get("ready"), 30) is None:
        raise RuntimeError("writer did not start")
    bound = f"{commits * 0.5 + 180:.0f}"  # --seconds: ends by itself if left behind
    events = spawn(stepflow_top_argv() + [str(root), "--events", "--seconds", bound],
                   stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    peer = spawn([sys.executable, str(HERE), "--peer", str(db)], stdout=subprocess.PIPE,
                 stdin=subprocess.DEVNULL)
    ev_lines, peer_lines = LineReader(events), LineReader(peer)
    assert writer.stdin is not None

    # Warm-up: commit a new running step until both monitors have reported one, so that
    # both have their baseline before the timed saves begin.
    ready = {"events": False, "peer": False}
    for attempt in range(30):
        writer.stdin.write(b"warmup\n")
        writer.stdin.flush()
        warm = wlines.wait_for(lambda d, n=attempt: d.get("warmup", [None, None])[1] == n, 10)
        if warm is None:
            raise RuntimeError("writer did not answer the warm-up")
        key = tuple(warm["warmup"])
        for name, reader, wait in (("events", ev_lines, 0.5), ("peer", peer_lines, 1.6)):
            if not ready[name]:
                ready[name] = reader.wait_for(lambda d, k=key: _step_key(d) == k, wait) is not None
        if all(ready.values()):
            break
    if not all(ready.values()):
        raise RuntimeError(f"monitors never reported the warm-up commits: {ready}")
    time.sleep(0.5)
    writer.stdin.write(b"go\n")
    writer.stdin.flush()
    if wlines.wait_for(lambda d: d.get("done"), commits * 0.5 + 60) is None:
        raise RuntimeError("writer did not finish")
    time.sleep(0.3)
    for proc in (events, peer, writer):
        stop(proc)
        _CHILDREN.remove(proc)

    commits = [(tuple(d["key"]), d["t"]) for _a, d in wlines.lines
               if "key" in d and d.get("measured")]
    all_commit_times = sorted(d["t"] for _a, d in wlines.lines if "t" in d)
    # Per step, its saves in order. A save is "seen" by the first event for that step
    # with its status or a later save's status: an intermediate state that was replaced
    # before a look is reflected by the look that shows its successor.
    per_step: dict[tuple, list[tuple[str, float]]] = {}
    for (eid, index, status), t in commits:
        per_step.setdefault((eid, index), []).append((status, t))
    finals = {key: saves[-1][0] for key, saves in per_step.items()}
    n, n_final = len(commits), len(finals)
    figures = {}
    for name, reader in (("stepflow-top", ev_lines), ("peer", peer_lines)):
        events: dict[tuple, list[tuple[str, float, float]]] = {}
        for arrived, data in reader.lines:
            key = _step_key(data)
            if key is not None:
                events.setdefault(key[:2], []).append((key[2], data["ts"], arrived))
        by_ts, by_arrival, exact, unseen = [], [], 0, []
        for step, saves in per_step.items():
            observed = events.get(step, [])
            statuses_seen = {status for status, _ts, _a in observed}
            for i, (status, t) in enumerate(saves):
                acceptable = {later for later, _t in saves[i:]}
                match = next(((ts, a) for st, ts, a in observed if st in acceptable), None)
                if match is None:
                    unseen.append((*step, status))
                    continue
                exact += status in statuses_seen
                by_ts.append(match[0] - t)
                by_arrival.append(match[1] - t)
        final_seen = sum(finals[step] in {st for st, _ts, _a in events.get(step, [])}
                         for step in finals)
        figures[name] = (by_ts, by_arrival, exact, final_seen, unseen)

    def pct(name: str, which: int, q: float) -> float | None:
        values = figures[name][which]
        return percentile(values, q) if values else None

    ours_p50, ours_p95 = pct("stepflow-top", 0, 0.5), pct("stepflow-top", 0, 0.95)
    ours_ok = not figures["stepflow-top"][4]
    if style != "replace":
        res.add(f"commit→event p50, {style}-style saves", fmt_ms(ours_p50),
                fmt_ms(pct("peer", 0, 0.5)), "≤ 30 ms",
                ours_ok and ours_p50 is not None and ours_p50 <= 0.030)
        res.add(f"final step statuses shown, {style}-style saves",
                f"{figures['stepflow-top'][3]}/{n_final}", f"{figures['peer'][3]}/{n_final}",
                "all", figures["stepflow-top"][3] == n_final)
        return root
    res.add("commit→event p50 (event ts)", fmt_ms(ours_p50), fmt_ms(pct("peer", 0, 0.5)),
            "≤ 30 ms", ours_ok and ours_p50 is not None and ours_p50 <= 0.030)
    res.add("commit→event p95 (event ts)", fmt_ms(ours_p95), fmt_ms(pct("peer", 0, 0.95)),
            "≤ 100 ms", ours_ok and ours_p95 is not None and ours_p95 <= 0.100)
    res.add("commit→line received p50", fmt_ms(pct("stepflow-top", 1, 0.5)),
            fmt_ms(pct("peer", 1, 0.5)), "—", None)
    res.add("commit→line received p95", fmt_ms(pct("stepflow-top", 1, 0.95)),
            fmt_ms(pct("peer", 1, 0.95)), "—", None)
    res.add("step saves shown with their status", f"{figures['stepflow-top'][2]}/{n}",
            f"{figures['peer'][2]}/{n}", "—", None)
    res.add("final step statuses shown", f"{figures['stepflow-top'][3]}/{n_final}",
            f"{figures['peer'][3]}/{n_final}", "all", figures["stepflow-top"][3] == n_final)
    ours = figures["stepflow-top"][0]
    if ours:
        res.notes.append(
            f"latency: {n} step saves ({len(all_commit_times)} commits with the execution-row "
            f"saves) over {all_commit_times[-1] - all_commit_times[0]:.1f} s; --events min "
            f"{min(ours) * 1000:.0f} ms, max {max(ours) * 1000:.0f} ms. A save whose status "
            "was replaced before a look counts as seen by the event showing its successor "
            "(the peer's 1 s poll skips most short 'running' states)")
    for name in ("stepflow-top", "peer"):
        unseen = figures[name][4]
        if unseen:
            res.notes.append(f"{name} never reflected {len(unseen)} saves, e.g. {unseen[:3]}")
    if ev_lines.other:
        res.notes.append(f"--events printed non-JSON: {ev_lines.other[:3]}")
    return root


def measure_idle(stores: dict[str, Path], window: float, res: Results) -> None:
    """Figure 2: idle CPU of TUI process trees and peers, all over the same window."""
    runs = {}
    try:
        for label, root in stores.items():
            db = root / "database" / "stepflow.db"
            app = PtyApp(stepflow_top_argv() + [str(root)], first_rows_pattern(db))
            peer = spawn([sys.executable, str(HERE), "--peer", str(db)],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            runs[label] = (app, peer, LineReader(peer))
        for label, (app, _peer, _lines) in runs.items():
            if not app.found.wait(20):
                raise RuntimeError(f"TUI ({label}) drew no execution row within 20 s")
        time.sleep(3.0)  # settle
        start = {label: (tree_cpu_seconds(a.pid), tree_cpu_seconds(p.pid), a.bytes_out)
                 for label, (a, p, _l) in runs.items()}
        t0 = time.monotonic()
        states: dict[str, set[str]] = {label: set() for label in runs}
        while time.monotonic() - t0 < window:  # watch for a stopped or dead TUI
            time.sleep(min(1.0, max(0.0, window - (time.monotonic() - t0))))
            for label, (app, _p, _l) in runs.items():
                fields = _stat_fields(app.pid)
                states[label].add(fields[0] if fields else "gone")
        elapsed = time.monotonic() - t0
        for label, (app, peer, _lines) in runs.items():
            ours = (tree_cpu_seconds(app.pid) - start[label][0]) / elapsed * 100
            theirs = (tree_cpu_seconds(peer.pid) - start[label][1]) / elapsed * 100
            out = (app.bytes_out - start[label][2]) / elapsed
            healthy = app.proc.poll() is None and not states[label] & {"T", "t", "Z", "gone"}
            res.add(f"idle CPU, {label} ({window:.0f} s)", f"{ours:.2f} %", f"{theirs:.2f} %",
                    "< 1 %", healthy and ours < 1.0)
            res.notes.append(
                f"idle, {label}: TUI tree of {len(descendants(app.pid))} process(es) wrote "
                f"{out:.0f} bytes/s to the terminal; VmRSS {rss_mb(app.pid) or 0:.0f} MB"
                + ("" if healthy else f" — TUI NOT RUNNING NORMALLY (states {states[label]})"))
    finally:
        for app, peer, _lines in runs.values():
            app.close()
            stop(peer)
            _CHILDREN.remove(peer)


def refresh_seconds(root: Path, runs: int) -> float | None:
    """Median time of the refresh ``--once`` makes, in this process (None if the
    package's internal API changed)."""
    try:
        import inspect

        from stepflow_top.live.refresher import Refresher, ViewRequest
        from stepflow_top.store.locate import locate_store

        paths = locate_store(str(root))
        extra = ({"tables": True}
                 if "tables" in inspect.signature(Refresher.refresh).parameters else {})
        times = []
        for attempt in range(runs + 1):
            t0 = time.perf_counter()
            refresher = Refresher(paths)
            try:
                snapshot = refresher.refresh(ViewRequest(limit=50), _dt.datetime.now(),
                                             force=True, **extra)
            finally:
                refresher.close()
            if attempt:
                times.append(time.perf_counter() - t0)
            if snapshot is None or snapshot.error:
                return None
        return statistics.median(times)
    except Exception as exc:  # internal API moved on: report, do not fail the run
        print(f"in-process refresh not measured: {exc!r}", file=sys.stderr)
        return None


def measure_once(small: Path, large: Path, repeats: int, res: Results) -> None:
    """Figure 3: ``--once --json --limit 50`` wall time, 1k vs 100k executions."""
    def run(argv: list[str], check) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=child_env(), timeout=120)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-500:]!r}")
        check(json.loads(done.stdout))
        return elapsed

    def ours_check(doc: dict) -> None:
        assert len(doc["executions"]) == 50, len(doc["executions"])

    def peer_check(doc: dict) -> None:
        assert len(doc["executions"]) == 50

    times: dict[tuple[str, str], list[float]] = {}
    stores = {"1k": small, "100k": large}
    for attempt in range(repeats + 1):  # the first round warms caches and is dropped
        for size, root in stores.items():  # interleaved, so drift hits both alike
            db = root / "database" / "stepflow.db"
            ours = run(stepflow_top_argv() + [str(root), "--once", "--json", "--limit", "50"],
                       ours_check)
            theirs = run([sys.executable, str(HERE), "--peer-once", str(db)], peer_check)
            if attempt:
                times.setdefault(("ours", size), []).append(ours)
                times.setdefault(("peer", size), []).append(theirs)
    med = {k: statistics.median(v) for k, v in times.items()}
    for size in stores:
        res.add(f"--once --json --limit 50, {size}", fmt_ms(med[("ours", size)]),
                fmt_ms(med[("peer", size)]), "—", None)
    ratio = med[("ours", "100k")] / med[("ours", "1k")]
    peer_ratio = med[("peer", "100k")] / med[("peer", "1k")]
    res.add("  ratio 100k / 1k", f"{ratio:.2f}", f"{peer_ratio:.2f}", "≤ 1.5", ratio <= 1.5)
    inproc = {size: refresh_seconds(root, repeats * 2) for size, root in stores.items()}
    if all(v is not None for v in inproc.values()):
        for size in stores:
            res.add(f"  of which the refresh itself, {size}", fmt_ms(inproc[size]), "—", "—",
                    None)
        res.add("  refresh ratio 100k / 1k", f"{inproc['100k'] / inproc['1k']:.2f}", "—", "—",
                None)
    res.notes.append(
        "the refresh itself: in this process, a new Refresher and the one forced refresh "
        "--once makes (limit 50), median; the rest of --once's time is Python start-up "
        "and imports")
    res.notes.append(
        f"--once: median of {repeats} runs each (after one warm-up round); all runs 100k: "
        + ", ".join(f"{t * 1000:.0f}" for t in times[("ours", "100k")]) + " ms; 1k: "
        + ", ".join(f"{t * 1000:.0f}" for t in times[("ours", "1k")]) + " ms")


def measure_first_rows(stores: dict[str, Path], repeats: int, res: Results) -> None:
    """Figure 4: TUI time to first rows and RSS (target on 100k; 1k for comparison)."""
    for size, root in stores.items():
        db = root / "database" / "stepflow.db"
        pattern = first_rows_pattern(db)
        firsts, rsss, later = [], [], []
        for _ in range(repeats):
            app = PtyApp(stepflow_top_argv() + [str(root)], pattern)
            try:
                if not app.found.wait(30):
                    raise RuntimeError(f"TUI drew no execution row within 30 s on {size}")
                firsts.append(app.first_match)
                rsss.append(rss_mb(app.pid) or 0.0)
                time.sleep(2.0)
                later.append(rss_mb(app.pid) or 0.0)
            finally:
                app.close()
        peer_first, peer_rss = [], []
        for _ in range(repeats):
            t0 = time.monotonic()
            peer = spawn([sys.executable, str(HERE), "--peer", str(db)],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            lines = LineReader(peer)
            try:
                if lines.wait_for(lambda d: d.get("ready"), 30) is None:
                    raise RuntimeError(f"peer did not start on {size}")
                peer_first.append(time.monotonic() - t0)
                peer_rss.append(rss_mb(peer.pid) or 0.0)
            finally:
                stop(peer)
                _CHILDREN.remove(peer)
        first = statistics.median(firsts)
        rss = max(max(rsss), max(later))
        target = size == "100k"
        res.add(f"TUI first rows, {size}", fmt_ms(first), fmt_ms(statistics.median(peer_first)),
                "≤ 1000 ms" if target else "—", first <= 1.0 if target else None)
        res.add(f"TUI RSS after first rows, {size}", f"{rss:.0f} MB", f"{max(peer_rss):.0f} MB",
                "≤ 120 MB" if target else "—", rss <= 120 if target else None)
        res.notes.append(
            f"first rows on {size} (spawn → a status word and an execution name drawn in the "
            "pty): " + ", ".join(f"{t * 1000:.0f}" for t in firsts) + " ms; VmRSS then "
            + ", ".join(f"{r:.0f}" for r in rsss) + " MB, 2 s later "
            + ", ".join(f"{r:.0f}" for r in later) + " MB (the larger is reported)")


# --------------------------------------------------------------------------- report


HEADERS = ("figure", "stepflow-top", "peer (1 s poll)", "target", "met")


def print_tables(res: Results) -> None:
    rows = [HEADERS, *res.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    print()
    for row in rows:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    print()
    for note in res.notes:
        print(f"  * {note}")
    print("\nMarkdown:\n")
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "|".join(["---"] + ["--:"] * 2 + ["---", ":-:"]) + "|")
    for row in res.rows:
        print("| " + " | ".join(cell.strip().replace("|", "\\|") for cell in row) + " |")
    print()


def environment_note() -> str:
    try:
        import textual

        textual_version = textual.__version__
    except Exception:  # pragma: no cover - reported, not fatal
        textual_version = "?"
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, textual {textual_version}; load average "
            f"{os.getloadavg()[0]:.2f} at start (other work on the machine skews wall times)")


def bench_main(quick: bool, keep: bool) -> int:
    from stepflow_top.demo.writer import populate

    commits = 30 if quick else 60
    idle_window = 10.0 if quick else 20.0
    repeats = 3 if quick else 5
    tmp = Path(tempfile.mkdtemp(prefix="stepflow-bench-"))
    res = Results()
    res.notes.append(environment_note())
    import stepflow_top

    compile_bytecode(Path(stepflow_top.__file__).parent)  # start-ups as installed
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    try:
        small, large = tmp / "s1k", tmp / "s100k"
        log("populating 1k executions × 4 steps (1 in flight)")
        populate(small, executions=1000, steps_per_execution=4)
        log("populating 100k executions × 4 steps (1 in flight)")
        t0 = time.monotonic()
        populate(large, executions=100_000, steps_per_execution=4)
        res.notes.append(f"populate(100k × 4 steps) took {time.monotonic() - t0:.1f} s")
        log(f"latency: {commits} step saves, 200-400 ms apart")
        quiet = measure_latency(tmp, commits, res)
        log(f"latency again, UPDATE-style saves: {commits} step saves")
        measure_latency(tmp, commits, res, style="update")
        log(f"idle CPU: 3 TUIs and 3 peers, {idle_window:.0f} s window")
        measure_idle({"1 step running, 1k": small, "1 step running, 100k": large,
                      "nothing running": quiet}, idle_window, res)
        log("--once timings")
        measure_once(small, large, repeats, res)
        log("TUI first rows")
        measure_first_rows({"1k": small, "100k": large}, 2 if quick else 3, res)
        log("done")
    finally:
        cleanup()
        if keep:
            print(f"stores kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res.notes.append(f"benchmark wall time {time.monotonic() - started:.0f} s"
                     + (" (--quick)" if quick else "")
                     + f"; load average {os.getloadavg()[0]:.2f} at the end")
    print_tables(res)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer repeats")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--commits", type=int, default=60, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    parser.add_argument("--save-style", default="replace", help=argparse.SUPPRESS)
    parser.add_argument("--peer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peer-once", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer is not None:
        return writer_main(args.writer, args.commits, args.seed, args.save_style)
    if args.peer is not None:
        try:
            return peer_main(args.peer, 1.0, once=False)
        except KeyboardInterrupt:
            return 0
    if args.peer_once is not None:
        return peer_main(args.peer_once, 1.0, once=True)

    atexit.register(cleanup)

    def on_signal(signum: int, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (`&`)
    try:
        return bench_main(args.quick, args.keep)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
