"""A simulated StepFlow Monitor service that writes a storage root the way the real one does.

Used by ``stepflow-top --demo``, by tests (as a *separate process*, so the monitor never
shares a connection with the writer) and by benchmarks (:func:`populate`). Standard
library only.

What is reproduced from the real service (see ``STEPFLOW_STORE.md`` and the
``stepflow-midrun`` fixture):

* Layout: ``<root>/database/stepflow.db``,
  ``<root>/executions/<execution_id>/step_<step_index>_<step_id>.log`` and
  ``<root>/artifacts/<execution_id>/<artifact_id>_<file name>``. The ``executions/`` folder
  exists from start-up; an execution's folder appears with its first log file; the
  ``artifacts/`` folder appears with the first copied artifact.
* The schema, byte for byte as the service creates it (:data:`SCHEMA`).
* One long-lived connection with the service's pragmas (:data:`STARTUP_PRAGMAS`), then
  ``PRAGMA wal_checkpoint(TRUNCATE)``.
* Every save is one ``INSERT OR REPLACE`` followed by a commit, so a replaced row gets a
  new rowid each time.
* The execution row is saved only twice: at creation (``pending``, ``started_at`` NULL,
  totals 0, ``current_step_index`` -1) and when the script ends. While it runs the row
  still says ``pending``; only its step rows show progress.
* A step row is saved when the step starts (``running``), on each ``META:`` marker and when
  the step completes or fails. Each save rewrites the step's log file whole (truncate,
  then write) with every line received so far; lines received between two saves exist only
  in memory. As in the fixture, a save with no lines yet writes no file, so a running
  step's log is usually absent or behind.
* ``META:KEY:value`` markers land in the step's ``metadata`` JSON as ``{"KEY": "value"}``
  (a string); like the real service, the ``estimated_duration`` *column* stays NULL.
* ``ARTIFACT:`` markers insert an artifact row. When the produced file exists it is copied
  to the artifacts folder (``file_path`` is the absolute path of the copy, ``file_size`` its
  size); when it does not, ``file_path`` keeps the original path, ``file_name`` and
  ``mime_type`` are empty, ``artifact_type`` is ``other`` and ``file_size`` 0.
* Timestamps are local time, ISO-8601 without zone, with microseconds
  (``2026-11-21T19:55:36.733484``), in rows and at the start of every log line.
* Log lines may hold ANSI escape sequences, bracket text that looks like Rich/Textual
  markup, carriage returns, very long lines and (rarely) bytes that are not valid UTF-8.
* Some runs fail (a step fails with a non-zero exit code and a message; the execution ends
  ``failed``); now and then a step stalls for about 40 s (at ``speed`` 1) with no row or
  log change at all.

Housekeeping (deleting old executions) is not simulated. Stopping :func:`run` does not
finish the executions in flight: like a service that was stopped, it leaves their rows
``pending`` and their current step ``running``.

Run it with ``python -m stepflow_top.demo.writer DIR [--seconds S] [--speed X] [--seed N]``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import heapq
import itertools
import json
import mimetypes
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DB_RELPATH",
    "SCHEMA",
    "STARTUP_PRAGMAS",
    "main",
    "open_store",
    "populate",
    "run",
]

#: Where the database lives inside a storage root.
DB_RELPATH = Path("database") / "stepflow.db"

#: The real service's DDL, verbatim (the text SQLite keeps in ``sqlite_master.sql``).
#: SQLite drops ``IF NOT EXISTS`` from the stored text, so re-running it on an existing
#: store is harmless and the stored text still matches the service's byte for byte.
SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS executions (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                command TEXT NOT NULL,
                working_directory TEXT,
                status TEXT NOT NULL,
                exit_code INTEGER,
                error_message TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                completed_at TEXT,
                environment TEXT,
                user_name TEXT,
                tags TEXT,
                total_steps INTEGER DEFAULT 0,
                completed_steps INTEGER DEFAULT 0,
                current_step_index INTEGER DEFAULT -1,
                metadata TEXT
            )""",
    """CREATE TABLE IF NOT EXISTS steps (
                id TEXT PRIMARY KEY,
                execution_id TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                step_index INTEGER NOT NULL,
                status TEXT NOT NULL,
                exit_code INTEGER,
                error_message TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                completed_at TEXT,
                estimated_duration REAL,
                stop_on_error BOOLEAN DEFAULT 0,
                metadata TEXT,
                FOREIGN KEY (execution_id) REFERENCES executions (id)
            )""",
    """CREATE TABLE IF NOT EXISTS artifacts (
                id TEXT PRIMARY KEY,
                execution_id TEXT NOT NULL,
                step_id TEXT,
                name TEXT NOT NULL,
                description TEXT,
                file_path TEXT NOT NULL,
                file_name TEXT,
                file_size INTEGER DEFAULT 0,
                mime_type TEXT,
                artifact_type TEXT,
                created_at TEXT NOT NULL,
                tags TEXT,
                is_public BOOLEAN DEFAULT 1,
                retention_days INTEGER,
                metadata TEXT,
                FOREIGN KEY (execution_id) REFERENCES executions (id),
                FOREIGN KEY (step_id) REFERENCES steps (id)
            )""",
    "CREATE INDEX IF NOT EXISTS idx_executions_status ON executions (status)",
    "CREATE INDEX IF NOT EXISTS idx_executions_created_at ON executions (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_executions_user ON executions (user_name)",
    "CREATE INDEX IF NOT EXISTS idx_steps_execution_id ON steps (execution_id)",
    "CREATE INDEX IF NOT EXISTS idx_steps_status ON steps (status)",
    "CREATE INDEX IF NOT EXISTS idx_artifacts_execution_id ON artifacts (execution_id)",
    "CREATE INDEX IF NOT EXISTS idx_artifacts_step_id ON artifacts (step_id)",
)

#: The service's start-up pragmas, in order; ``wal_checkpoint(TRUNCATE)`` follows them.
STARTUP_PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=10000",
    "PRAGMA temp_store=memory",
    "PRAGMA mmap_size=268435456",
    "PRAGMA wal_autocheckpoint=1000",
)

_EXECUTION_COLUMNS = (
    "id", "name", "command", "working_directory", "status", "exit_code", "error_message",
    "created_at", "started_at", "completed_at", "environment", "user_name", "tags",
    "total_steps", "completed_steps", "current_step_index", "metadata",
)
_STEP_COLUMNS = (
    "id", "execution_id", "name", "description", "step_index", "status", "exit_code",
    "error_message", "created_at", "started_at", "completed_at", "estimated_duration",
    "stop_on_error", "metadata",
)
_ARTIFACT_COLUMNS = (
    "id", "execution_id", "step_id", "name", "description", "file_path", "file_name",
    "file_size", "mime_type", "artifact_type", "created_at", "tags", "is_public",
    "retention_days", "metadata",
)


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )


_INSERT_EXECUTION = _insert_sql("executions", _EXECUTION_COLUMNS)
_INSERT_STEP = _insert_sql("steps", _STEP_COLUMNS)
_INSERT_ARTIFACT = _insert_sql("artifacts", _ARTIFACT_COLUMNS)


# --------------------------------------------------------------------------- helpers


def _iso(moment: _dt.datetime) -> str:
    """Format a naive local datetime the way the service does (always with microseconds)."""
    return moment.isoformat(timespec="microseconds")


def _now() -> str:
    """The current local time as the service writes it: ``2026-11-21T19:55:36.733484``."""
    return _iso(_dt.datetime.now())


def _iso_from_epoch(seconds: float) -> str:
    return _iso(_dt.datetime.fromtimestamp(seconds))


class _FastIso:
    """``_iso_from_epoch`` for bulk use: caches the local ``YYYY-MM-DDTHH:MM:`` per minute.

    Time-zone offsets are whole minutes, so a minute's prefix is the same for all its
    seconds; this is several times faster than ``datetime.fromtimestamp().isoformat()``.
    """

    def __init__(self) -> None:
        self._prefixes: dict[int, str] = {}

    def __call__(self, seconds: float) -> str:
        micros = round(seconds * 1_000_000)
        whole, micro = divmod(micros, 1_000_000)
        minute, second = divmod(whole, 60)
        prefix = self._prefixes.get(minute)
        if prefix is None:
            prefix = _dt.datetime.fromtimestamp(minute * 60).isoformat()[:17]
            self._prefixes[minute] = prefix
        return f"{prefix}{second:02d}.{micro:06d}"


_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def _uuid4(rng: random.Random) -> str:
    """A UUID4 string drawn from ``rng`` (so that a seed makes ids reproducible).

    Equal to ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, only faster.
    """
    h = f"{(rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _mime_type(file_name: str) -> str:
    if file_name.endswith(".log"):
        return "text/plain"
    return mimetypes.guess_type(file_name)[0] or "application/octet-stream"


def _json(value: object) -> str:
    return json.dumps(value)


def _log_line(timestamp: str, text: str | bytes) -> bytes:
    payload = text if isinstance(text, bytes) else text.encode("utf-8")
    return b"[" + timestamp.encode("ascii") + b"] " + payload + b"\n"


def _write_log(root: Path, execution_id: str, step_index: int, step_id: str,
               lines: Sequence[bytes]) -> None:
    """Rewrite a step's log file whole (truncate, then write), as the service does.

    Writes nothing when there are no lines yet (the fixture's running step has no file).
    """
    if not lines:
        return
    folder = root / "executions" / execution_id
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"step_{step_index}_{step_id}.log", "wb") as handle:
        handle.write(b"".join(lines))


def open_store(root: Path | str) -> sqlite3.Connection:
    """Create ``root`` as a storage root if needed and open the service's connection.

    Makes ``<root>/database`` and ``<root>/executions`` (``mkdir -p``), connects to
    ``<root>/database/stepflow.db``, applies :data:`STARTUP_PRAGMAS`, creates the schema
    when missing and runs ``PRAGMA wal_checkpoint(TRUNCATE)``.

    Returns the open connection (Python's default transaction handling: a write opens a
    transaction, ``commit()`` ends it). The caller closes it; closing the last connection
    makes SQLite checkpoint and delete ``-wal``/``-shm``.

    Raises ``OSError`` when the folders cannot be created and ``sqlite3.Error`` when the
    database cannot be opened or is not a database.
    """
    root = Path(root)
    (root / DB_RELPATH).parent.mkdir(parents=True, exist_ok=True)
    (root / "executions").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(root / DB_RELPATH), timeout=30.0)
    try:
        for pragma in STARTUP_PRAGMAS:
            conn.execute(pragma).fetchall()
        for statement in SCHEMA:
            conn.execute(statement)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Failure:
    """How a step fails when it does: lines printed first, then exit code and message."""

    probability: float
    exit_code: int
    message: str
    lines: tuple[str | bytes, ...]


@dataclass(frozen=True)
class _Artifact:
    """An ``ARTIFACT:`` marker: file name, description, artifact type, file content."""

    name: str
    description: str
    kind: str
    content: bytes


@dataclass(frozen=True)
class _StepSpec:
    name: str
    seconds: tuple[float, float]
    lines: tuple[str | bytes, ...]
    stop_on_error: bool = False
    #: ``META:`` markers received right after ``STEP_START`` (one save each).
    meta: tuple[tuple[str, str], ...] = ()
    #: A ``META:PROGRESS:50`` marker half-way: the log file appears while the step runs.
    progress_meta: bool = False
    artifacts: tuple[_Artifact, ...] = ()
    failure: _Failure | None = None


@dataclass(frozen=True)
class _Script:
    name: str
    users: tuple[str, ...]
    command: str
    working_directory: str
    environment: dict[str, str]
    tags: tuple[str, ...]
    steps: tuple[_StepSpec, ...]
    #: ``stop_on_error`` goes into each step's metadata at start (as in the fixture's
    #: nightly-etl rows: ``{"stop_on_error": true}``).
    stop_on_error_metadata: bool = False


_CSV = b"id,region,amount\n1,eu-west,129.90\n2,us-east,12.50\n3,ap-south,87.00\n"
_HTML = (b"<!doctype html><html><head><title>Report</title></head><body>"
         b"<h1>Weekly report</h1><p>All figures in EUR.</p></body></html>\n")

_SCRIPTS: tuple[_Script, ...] = (
    _Script(
        name="nightly-etl",
        users=("alice",),
        command="python3 /srv/etl/nightly_etl.py --date {date}",
        working_directory="/srv/etl",
        environment={"PYTHONUNBUFFERED": "1", "ETL_ENV": "prod",
                     "WAREHOUSE_HOST": "warehouse.internal", "TZ": "Europe/Berlin"},
        tags=("etl", "nightly", "prod"),
        stop_on_error_metadata=True,
        steps=(
            _StepSpec("environment_setup", (0.6, 1.2), (
                "Setting up environment...",
                "Environment setup completed successfully",
            ), stop_on_error=True),
            _StepSpec("extract_orders", (1.0, 3.0), (
                "Connecting to orders-db.internal:5432...",
                "Extracting orders since {date}...",
                "Extracted {n} rows from orders",
                "[bold]orders[/bold]: extraction done",
            ), stop_on_error=True, failure=_Failure(
                0.10, 2,
                "psycopg2.OperationalError: could not connect to server: Connection refused",
                ("Connecting to orders-db.internal:5432...",
                 "WARNING: connection refused, retrying (2/3)",
                 "ERROR: could not connect to server: Connection refused"),
            )),
            _StepSpec("transform", (1.0, 3.0), (
                "Applying 14 transformations...",
                "Dropped {n} duplicate rows",
                "Normalised currency codes [EUR, USD, GBP]",
                "Transformation finished in {sec}s",
            ), meta=(("ESTIMATED_DURATION", "90"),), progress_meta=True),
            _StepSpec("load_warehouse", (1.5, 4.0), (
                "Loading into warehouse.fact_orders...",
                "Upserted {n} rows",
                "[green]OK[/green] fact_orders",
            ), stop_on_error=True, artifacts=(
                _Artifact("load_summary.json", "Load Summary", "report",
                          b'{"table": "fact_orders", "rows": 48213, "status": "ok"}\n'),
            )),
            _StepSpec("vacuum_staging", (0.5, 1.0), (
                "VACUUM staging.orders_raw",
                "Staging area cleaned",
            )),
        ),
    ),
    _Script(
        name="shell-build",
        users=("bob",),
        command="bash /home/bob/src/webapp/build.sh --release",
        working_directory="/home/bob/src/webapp",
        environment={"CI": "false", "NODE_ENV": "production",
                     "PATH": "/usr/local/bin:/usr/bin:/bin"},
        tags=("build", "webapp"),
        steps=(
            _StepSpec("Environment Setup", (0.6, 1.5), (
                "ERROR: Could not open requirements file: [Errno 2] No such file or "
                "directory: 'requirements.txt'",
                "node v20.11.1, npm 10.2.4",
            ), meta=(("ESTIMATED_DURATION", "60"),)),
            _StepSpec("Install Dependencies", (1.5, 4.0), (
                "npm ci --no-audit",
                "\x1b[2K\rDownloading packages  12%\rDownloading packages  57%"
                "\rDownloading packages 100%",
                "added {n} packages in {sec}s",
                "\x1b[33mnpm WARN\x1b[0m deprecated inflight@1.0.6: This module leaks memory",
            ), meta=(("DESCRIPTION", "Installing npm packages"),), failure=_Failure(
                0.08, 1,
                "npm ERR! code ETIMEDOUT: request to https://registry.npmjs.org failed",
                ("npm ci --no-audit",
                 "\x1b[31mnpm ERR!\x1b[0m code ETIMEDOUT",
                 "\x1b[31mnpm ERR!\x1b[0m network request to https://registry.npmjs.org failed"),
            )),
            _StepSpec("Compile", (1.0, 3.5), (
                "\x1b]0;webapp build\x07vite v5.1.4 building for production...",
                "transforming (1203) src/main.tsx",
                "\x1b[32m✓\x1b[39m {n} modules transformed.",
                "dist/assets/index-4f9a1c.js   \x1b[1m\x1b[33m612.40 kB\x1b[39m\x1b[22m",
                "(!) Some chunks are larger than 500 kB after minification.",
            ), progress_meta=True),
            _StepSpec("Package", (0.5, 1.5), (
                "tar czf webapp.tar.gz dist/",
                "Package ready: webapp.tar.gz",
            ), artifacts=(
                _Artifact("webapp.tar.gz", "Release bundle", "archive",
                          b"\x1f\x8b\x08\x00demo-archive\x00\x00" * 8),
            )),
        ),
    ),
    _Script(
        name="data-report",
        users=("alice", "carol"),
        command="python3 /workspace/reports/weekly_report.py --format html",
        working_directory="/workspace",
        environment={"PYTHONUNBUFFERED": "1", "REPORT_WEEK": "{week}"},
        tags=("report", "weekly"),
        steps=(
            _StepSpec("Environment Verification", (1.0, 2.0), (
                "Checking Python version...",
                "Verifying dependencies...",
                "✅ Environment verified successfully",
            ), meta=(("DESCRIPTION", "Checking Python environment and dependencies"),)),
            _StepSpec("Data Collection", (1.5, 4.0), (
                "Querying sales API (page 1/4)...",
                "Querying sales API (page 4/4)...",
                "Collected {n} records",
            ), meta=(("ESTIMATED_DURATION", "180"),), failure=_Failure(
                0.08, 1,
                "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable",
                ("Querying sales API (page 1/4)...",
                 "Traceback (most recent call last):",
                 '  File "/workspace/reports/weekly_report.py", line 88, in collect',
                 "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable"),
            )),
            _StepSpec("Aggregation", (1.0, 2.5), (
                "Grouping by region and week...",
                "[INFO] 7 regions, 52 weeks",
                "Top region: eu-west ({pct}%)",
            )),
            _StepSpec("Render Report", (0.5, 1.5), (
                "Rendering template report.html.j2",
                "[link=file:///workspace/out/report.html]report.html[/link] written",
            ), artifacts=(
                _Artifact("report.html", "Weekly Report", "report", _HTML),
                _Artifact("sales.csv", "Raw sales data", "data", _CSV),
            )),
        ),
    ),
    _Script(
        name="model-train",
        users=("carol",),
        command="python3 train.py --epochs 5 --lr 0.001",
        working_directory="/home/carol/ml/churn",
        environment={"CUDA_VISIBLE_DEVICES": "0", "PYTHONHASHSEED": "0",
                     "WANDB_MODE": "offline"},
        tags=("ml", "training", "gpu"),
        steps=(
            _StepSpec("Data Processing", (1.0, 3.0), (
                "Loading dataset...",
                "Cleaning data...",
                "Feature extraction...",
            ), meta=(("DESCRIPTION", "Processing training data"),), artifacts=(
                _Artifact("processed_data.csv", "Processed Dataset", "data", _CSV),
            )),
            _StepSpec("Model Training", (2.0, 4.0), (
                "Initializing model...",
                "Training in progress...",
                "Epoch 1/5 loss=0.{n}",
                "Epoch 2/5 loss=0.{n}",
                "Epoch 3/5 loss=0.{n}",
                "Epoch 4/5 loss=0.{n}",
                "Epoch 5/5 loss=0.{n}",
                "Model training completed",
            ), meta=(("ESTIMATED_DURATION", "300"),), progress_meta=True, artifacts=(
                _Artifact("model.pkl", "Trained Model", "data", b"\x80\x04\x95demo-model." * 16),
                _Artifact("training.log", "Training Logs", "log",
                          b"epoch,loss\n1,0.61\n2,0.43\n3,0.35\n4,0.31\n5,0.29\n"),
            ), failure=_Failure(
                0.10, 137,
                "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
                ("Initializing model...",
                 "Epoch 1/5 loss=0.{n}",
                 "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),
            )),
            _StepSpec("Model Evaluation", (1.0, 3.0), (
                "Running evaluation...",
                "Calculating metrics...",
                "Accuracy: {pct}%",
                "F1-Score: 0.94",
            ), artifacts=(
                _Artifact("evaluation_report.html", "Evaluation Report", "report", _HTML),
            )),
        ),
    ),
    _Script(
        name="backup-verify",
        users=("ci", "bob"),
        command="bash /opt/backup/verify.sh /var/backups/db",
        working_directory="/opt/backup",
        environment={"BACKUP_DIR": "/var/backups/db", "PGHOST": "localhost"},
        tags=("backup", "ops"),
        steps=(
            _StepSpec("Locate Snapshot", (0.5, 1.0), (
                "Latest snapshot: /var/backups/db/db-{date}.dump",
            )),
            _StepSpec("Checksum", (1.0, 2.5), (
                "sha256sum db-{date}.dump",
                "checksum OK",
            ), failure=_Failure(
                0.08, 3,
                "checksum mismatch for db-{date}.dump",
                ("sha256sum db-{date}.dump",
                 "\x1b[1;31mFAIL\x1b[0m checksum mismatch (expected 9f2c…, got 03ab…)"),
            )),
            _StepSpec("Restore to Scratch", (1.5, 4.0), (
                "pg_restore -d scratch db-{date}.dump",
                "restored {n} rows in 12 tables",
            ), meta=(("ESTIMATED_DURATION", "240"),)),
            _StepSpec("Row Count Check", (0.5, 1.5), (
                "orders: {n} rows [ok]",
                "customers: {n} rows [ok]",
            )),
            _StepSpec("Cleanup", (0.5, 1.0), (
                "DROP DATABASE scratch",
            ), artifacts=(
                _Artifact("verify-report.txt", "Verification report", "report",
                          b"snapshot ok\nrows ok\n"),
            )),
        ),
    ),
    _Script(
        name="lint-and-test",
        users=("ci",),
        command="make -C /builds/stepflow lint test",
        working_directory="/builds/stepflow",
        environment={"CI": "true", "GIT_COMMIT": "{sha}", "PYTEST_ADDOPTS": "--color=yes"},
        tags=("ci", "tests"),
        steps=(
            _StepSpec("ruff", (0.5, 1.5), (
                "ruff check .",
                "\x1b[1mAll checks passed!\x1b[0m",
            )),
            _StepSpec("mypy", (1.0, 2.5), (
                "mypy src",
                "\x1b[1m\x1b[32mSuccess: no issues found in 84 source files\x1b(B\x1b[m",
            )),
            _StepSpec("pytest unit", (1.5, 4.0), (
                "\x1b[1m============================= test session starts "
                "==============================\x1b[0m",
                "collected {n} items",
                "tests/test_api.py \x1b[32m........................\x1b[0m [ 40%]",
                "tests/test_models.py \x1b[32m.................................\x1b[0m [100%]",
                "\x1b[32m============================= {n} passed in {sec}s "
                "==============================\x1b[0m",
            ), progress_meta=True, failure=_Failure(
                0.15, 1,
                "AssertionError: assert [1, 2] == [1]",
                ("collected {n} items",
                 "tests/test_api.py \x1b[32m.......\x1b[31mF\x1b[0m",
                 "\x1b[31mE       AssertionError: assert [1, 2] == [1]\x1b[0m",
                 "\x1b[31m[bold]1 failed[/bold]\x1b[0m, [@click=app.quit]rerun[/] with -x",
                 "\x1b[31m==== 1 failed, 41 passed in 3.02s ====\x1b[0m"),
            )),
            _StepSpec("pytest integration", (1.0, 3.0), (
                "collected 12 items",
                "tests/integration/test_db.py \x1b[32m............\x1b[0m [100%]",
                "[/] 12 passed",
            )),
        ),
    ),
    _Script(
        name="deploy-staging",
        users=("ci", "bob"),
        command="./deploy.sh staging --tag {sha}",
        working_directory="/builds/webapp",
        environment={"DEPLOY_ENV": "staging", "KUBECONFIG": "/etc/kube/staging.yaml",
                     "IMAGE_TAG": "{sha}"},
        tags=("deploy", "staging"),
        steps=(
            _StepSpec("Build Image", (1.5, 4.0), (
                "docker build -t registry.internal/webapp:{sha} .",
                "Step 7/12 : RUN npm ci",
                "Successfully built 3f2a9c1b7d4e",
            ), meta=(("ESTIMATED_DURATION", "120"),)),
            _StepSpec("Push Image", (1.0, 2.5), (
                "The push refers to repository [registry.internal/webapp]",
                "{sha}: digest: sha256:5be1… size: 2841",
            )),
            _StepSpec("Migrate DB", (0.5, 2.0), (
                "alembic upgrade head",
                "INFO  [alembic.runtime.migration] Running upgrade 41c2 -> 5d7e",
            ), failure=_Failure(
                0.08, 1,
                'sqlalchemy.exc.ProgrammingError: relation "users_tmp" already exists',
                ("alembic upgrade head",
                 'ERROR [alembic] relation "users_tmp" already exists'),
            )),
            _StepSpec("Rollout", (1.0, 3.0), (
                "kubectl rollout status deploy/webapp -n staging",
                'Waiting for deployment "webapp" rollout to finish: 1 of 3 updated replicas...',
                'deployment "webapp" successfully rolled out',
            ), progress_meta=True),
            _StepSpec("Smoke Test", (0.5, 1.5), (
                "GET https://staging.example.com/health -> 200",
                "\x1b[32m✔\x1b[0m smoke tests passed",
            )),
        ),
    ),
    _Script(
        name="db-migrate",
        users=("carol", "alice"),
        command="python3 manage.py migrate --noinput",
        working_directory="/srv/app",
        environment={"DJANGO_SETTINGS_MODULE": "app.settings.prod"},
        tags=("db",),
        steps=(
            _StepSpec("Check Pending", (1.0, 2.5), (
                "Operations to perform:",
                "  Apply all migrations: admin, auth, billing, sessions",
            )),
            _StepSpec("Apply Migrations", (3.0, 6.0), (
                "  Applying billing.0042_invoice_due_date... OK",
                "  Applying billing.0043_backfill_due_date... OK",
                "\tdone in {sec}s",
            ), failure=_Failure(
                0.10, 1,
                "django.db.utils.IntegrityError: null value in column \"due_date\"",
                ("  Applying billing.0042_invoice_due_date... OK",
                 "  Applying billing.0043_backfill_due_date...",
                 'django.db.utils.IntegrityError: null value in column "due_date"'),
            )),
        ),
    ),
)

_TRIGGERS = ("cron", "manual", "api", "webhook")
_HOSTS = ("worker-1", "worker-2", "build-01")
_INVALID_UTF8_LINES = (
    b"Reading legacy export: caf\xe9_menu.csv (latin-1)",
    b"\xff\xfe binary junk from a subprocess: \x80\x81\x82",
    b"decoder said: \xc3\x28 is not a valid continuation byte",
)

#: Probabilities per execution of the rarer behaviours.
_STALL_PROBABILITY = 0.06
_STALL_SECONDS = (38.0, 42.0)
_INVALID_UTF8_PROBABILITY = 0.04
_LONG_LINE_PROBABILITY = 0.05


def _fill(text: str | bytes, values: dict[str, str]) -> str | bytes:
    """Replace ``{n}``-style placeholders (only known keys; other braces stay as they are)."""
    if isinstance(text, bytes):
        return text
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _random_values(rng: random.Random) -> dict[str, str]:
    return {
        "n": str(rng.randint(120, 98000)),
        "pct": f"{rng.uniform(40, 99):.1f}",
        "sec": f"{rng.uniform(0.4, 9.9):.2f}",
    }


def _long_line(rng: random.Random) -> str:
    records = [{"id": i, "sku": f"SKU-{rng.randint(10000, 99999)}",
                "qty": rng.randint(1, 40)} for i in range(80)]
    return "DEBUG payload=" + json.dumps(records)


# --------------------------------------------------------------------------- planning


@dataclass
class _PlannedStep:
    spec: _StepSpec
    duration: float  # seconds at speed 1
    fails: bool = False
    stalls: bool = False
    extra_lines: list[tuple[int, str | bytes]] = field(default_factory=list)


@dataclass
class _Plan:
    script: _Script
    user: str
    command: str
    environment: dict[str, str]
    tags: list[str]
    metadata: dict[str, object]
    steps: list[_PlannedStep]
    values: dict[str, str]


def _plan_execution(rng: random.Random, script: _Script) -> _Plan:
    """Decide everything random about one execution up front, from its own ``rng``."""
    today = _dt.date.today()
    values = {
        "date": (today - _dt.timedelta(days=1)).isoformat(),
        "week": f"{today.isocalendar()[0]}-W{today.isocalendar()[1]:02d}",
        "sha": f"{rng.getrandbits(28):07x}",
    }
    steps: list[_PlannedStep] = []
    for spec in script.steps:
        planned = _PlannedStep(spec, rng.uniform(*spec.seconds))
        steps.append(planned)
        if spec.failure is not None and rng.random() < spec.failure.probability:
            planned.fails = True
            break
    if rng.random() < _STALL_PROBABILITY:
        stalled = rng.choice(steps)
        stalled.stalls = True
        stalled.duration = rng.uniform(*_STALL_SECONDS)
    if rng.random() < _INVALID_UTF8_PROBABILITY:
        target = rng.choice(steps)
        target.extra_lines.append((rng.randint(0, 3), rng.choice(_INVALID_UTF8_LINES)))
    if rng.random() < _LONG_LINE_PROBABILITY:
        target = rng.choice(steps)
        target.extra_lines.append((rng.randint(0, 3), _long_line(rng)))
    environment = {key: str(_fill(value, values)) for key, value in script.environment.items()}
    return _Plan(
        script=script,
        user=rng.choice(script.users),
        command=str(_fill(script.command, values)),
        environment=environment,
        tags=list(script.tags),
        metadata={"trigger": rng.choice(_TRIGGERS), "host": rng.choice(_HOSTS),
                  "script_version": f"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}"},
        steps=steps,
        values=values,
    )


def _step_lines(rng: random.Random, planned: _PlannedStep,
                values: dict[str, str]) -> list[str | bytes]:
    spec = planned.spec
    source: Sequence[str | bytes]
    if planned.fails and spec.failure is not None:
        source = spec.failure.lines
    else:
        source = spec.lines
    lines = [_fill(_fill(line, values), _random_values(rng)) for line in source]
    for position, extra in planned.extra_lines:
        lines.insert(min(position, len(lines)), extra)
    return lines


# --------------------------------------------------------------------------- live writer


_Process = Generator[float, None, None]


class _Service:
    """The simulated service: one connection, a virtual-time scheduler of generators.

    Each execution is a generator that performs the service's saves and yields the delay
    (seconds, already divided by ``speed``) until its next action. The scheduler runs on
    one thread, so every save is a plain ``INSERT OR REPLACE`` + commit on one connection.
    """

    MAX_CONCURRENT = 2

    def __init__(self, root: Path, conn: sqlite3.Connection, rng: random.Random,
                 speed: float, workdir: Path) -> None:
        self.root = root
        self.conn = conn
        self.rng = rng
        self.speed = speed
        self.workdir = workdir
        self.active = 0
        self.finished = 0
        self._heap: list[tuple[float, int, _Process]] = []
        self._seq = itertools.count()
        self._vnow = 0.0

    # -- scheduling ---------------------------------------------------------------

    def spawn(self, process: _Process, at: float) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), process))

    def loop(self, deadline: float | None, stop: threading.Event) -> None:
        """Run scheduled actions until ``deadline`` (monotonic seconds) or ``stop``."""
        while self._heap and not stop.is_set():
            at = self._heap[0][0]
            if deadline is not None and at > deadline:
                stop.wait(max(0.0, deadline - time.monotonic()))
                return
            delay = at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            _, _, process = heapq.heappop(self._heap)
            self._vnow = at
            try:
                step = next(process)
            except StopIteration:
                continue
            # Virtual time: the next action is due relative to when this one was due, so
            # the order of actions does not depend on how late the loop ran.
            self.spawn(process, at + step)

    def launcher(self) -> _Process:
        """Start executions: the first at once, then one every few seconds, at most two."""
        while True:
            if self.active < self.MAX_CONCURRENT:
                script = self.rng.choice(_SCRIPTS)
                exec_rng = random.Random(self.rng.getrandbits(64))
                self.active += 1
                self.spawn(self.execution(_plan_execution(exec_rng, script), exec_rng),
                           self._vnow)
                yield self.rng.uniform(1.0, 10.0) / self.speed
            else:
                yield 0.25 / self.speed

    # -- saves ----------------------------------------------------------------------

    def _save(self, sql: str, row: dict[str, object], columns: Sequence[str]) -> None:
        self.conn.execute(sql, tuple(row[c] for c in columns))
        self.conn.commit()

    def _save_step(self, row: dict[str, object], index: int,
                   lines: Sequence[bytes]) -> None:
        """Save a step row, then rewrite its log file with ``lines`` (if any)."""
        self._save(_INSERT_STEP, row, _STEP_COLUMNS)
        _write_log(self.root, str(row["execution_id"]), index, str(row["id"]), lines)

    def _save_artifact(self, execution_id: str, step_id: str, artifact: _Artifact,
                       plan: _Plan, rng: random.Random) -> None:
        artifact_id = _uuid4(rng)
        row: dict[str, object] = {
            "id": artifact_id, "execution_id": execution_id, "step_id": step_id,
            "name": artifact.name, "description": artifact.description,
            "created_at": _now(), "tags": "[]", "is_public": 1,
            "retention_days": rng.choice((None, None, 30, 90)), "metadata": "{}",
        }
        if rng.random() < 0.7:
            # The script really produced the file: the service copies it.
            source_dir = self.workdir / execution_id
            source_dir.mkdir(parents=True, exist_ok=True)
            source = source_dir / artifact.name
            source.write_bytes(artifact.content)
            target_dir = self.root / "artifacts" / execution_id
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / f"{artifact_id}_{artifact.name}"
            shutil.copyfile(source, target)
            row.update(
                file_path=str(target.resolve()), file_name=artifact.name,
                file_size=target.stat().st_size,
                mime_type=_mime_type(artifact.name),
                artifact_type=artifact.kind,
            )
        else:
            # The file the marker names does not exist: nothing is copied (as in the fixture).
            row.update(
                file_path=f"{plan.script.working_directory}/{artifact.name}", file_name="",
                file_size=0, mime_type="", artifact_type="other",
            )
        self._save(_INSERT_ARTIFACT, row, _ARTIFACT_COLUMNS)

    # -- one execution --------------------------------------------------------------

    def execution(self, plan: _Plan, rng: random.Random) -> _Process:
        """One script run, from its ``pending`` row to its final save."""
        s = self.speed
        script = plan.script
        execution_id = _uuid4(rng)
        row: dict[str, object] = {
            "id": execution_id, "name": script.name, "command": plan.command,
            "working_directory": script.working_directory, "status": "pending",
            "exit_code": None, "error_message": None, "created_at": _now(),
            "started_at": None, "completed_at": None,
            "environment": _json(plan.environment), "user_name": plan.user,
            "tags": _json(plan.tags), "total_steps": 0, "completed_steps": 0,
            "current_step_index": -1, "metadata": _json(plan.metadata),
        }
        try:
            self._save(_INSERT_EXECUTION, row, _EXECUTION_COLUMNS)
            started_at = _now()  # known to the service now, written only at the end
            yield rng.uniform(0.08, 0.2) / s  # interpreter start-up before the first marker

            completed = 0
            failure: tuple[int, str, str] | None = None
            for index, planned in enumerate(plan.steps):
                spec = planned.spec
                metadata: dict[str, object] = {}
                if script.stop_on_error_metadata:
                    metadata["stop_on_error"] = spec.stop_on_error
                step: dict[str, object] = {
                    "id": _uuid4(rng), "execution_id": execution_id, "name": spec.name,
                    "description": "", "step_index": index, "status": "running",
                    "exit_code": None, "error_message": None, "created_at": _now(),
                    "started_at": _now(), "completed_at": None, "estimated_duration": None,
                    "stop_on_error": int(spec.stop_on_error), "metadata": _json(metadata),
                }
                lines: list[bytes] = []
                self._save_step(step, index, lines)
                for key, value in spec.meta:
                    yield rng.uniform(0.002, 0.02) / s
                    metadata[key] = value
                    step["metadata"] = _json(metadata)
                    self._save_step(step, index, lines)

                texts = _step_lines(rng, planned, plan.values)
                interval = planned.duration / (len(texts) + 1)
                half = len(texts) // 2
                for position, text in enumerate(texts):
                    yield interval / s
                    lines.append(_log_line(_now(), text))
                    if (spec.progress_meta and not planned.stalls and position + 1 == half
                            and not planned.fails):
                        metadata["PROGRESS"] = "50"
                        step["metadata"] = _json(metadata)
                        self._save_step(step, index, lines)
                if not planned.fails:
                    for artifact in spec.artifacts:
                        yield rng.uniform(0.001, 0.005) / s
                        self._save_artifact(execution_id, str(step["id"]), artifact, plan, rng)
                yield interval / s

                row["current_step_index"] = index
                row["total_steps"] = index + 1
                step["completed_at"] = _now()
                if planned.fails and spec.failure is not None:
                    message = str(_fill(spec.failure.message, plan.values))
                    step.update(status="failed", exit_code=spec.failure.exit_code,
                                error_message=message)
                    self._save_step(step, index, lines)
                    failure = (spec.failure.exit_code, spec.name, message)
                    break
                step.update(status="completed", exit_code=0)
                self._save_step(step, index, lines)
                completed += 1
                row["completed_steps"] = completed
                yield 0.001 / s

            yield rng.uniform(0.003, 0.01) / s  # the script exits
            row.update(started_at=started_at, completed_at=_now())
            if failure is None:
                row.update(status="completed", exit_code=0, error_message=None)
            else:
                row.update(status="failed", exit_code=failure[0],
                           error_message=f"Step '{failure[1]}' failed: {failure[2]}")
            self._save(_INSERT_EXECUTION, row, _EXECUTION_COLUMNS)
            self.finished += 1
        finally:
            self.active -= 1


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise ValueError(f"speed must be a positive number, got {speed!r}")


def run(root: Path | str, *, seconds: float | None = None, speed: float = 1.0,
        seed: int | None = None, stop: threading.Event | None = None) -> int:
    """Create ``root`` as a storage root and write to it like a live service.

    ``root`` is created (``mkdir -p``) with ``database/stepflow.db`` (see
    :func:`open_store`) and ``executions/``; an existing store is appended to. Executions
    from the built-in catalogue then run, at most two at a time; the first one's
    ``pending`` row is committed at once. At ``speed`` 1 an execution takes about 4-12 s
    (less when a step fails early, about 40 s more when a step stalls) and a new one starts
    every 1-10 s while fewer than two run; ``speed`` 2 runs everything twice as fast.

    ``seconds`` is wall-clock seconds to run (``None``: until ``stop`` is set); ``stop``
    ends the run within one scheduler wait (it is waited on, never polled with
    ``time.sleep``). ``seed`` makes the sequence of scripts, ids, outcomes and log contents
    reproducible (timestamps are always the real local time).

    Returns the number of executions that reached their final save. Executions still
    running when the run ends are left as a stopped service leaves them (row ``pending``,
    current step ``running``). The connection is closed at the end, so SQLite checkpoints
    and deletes ``-wal``/``-shm`` unless another connection is still open.

    Raises ``ValueError`` for a non-positive ``speed`` or a negative ``seconds``,
    ``OSError`` when the storage root cannot be written and ``sqlite3.Error`` for a
    database SQLite cannot use.
    """
    _check_speed(speed)
    if seconds is not None and seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds!r}")
    stop = stop if stop is not None else threading.Event()
    start = time.monotonic()
    deadline = None if seconds is None else start + seconds
    root = Path(root)
    conn = open_store(root)
    workdir = Path(tempfile.mkdtemp(prefix="stepflow-demo-work-"))
    try:
        service = _Service(root, conn, random.Random(seed), speed, workdir)
        service.spawn(service.launcher(), time.monotonic())
        service.loop(deadline, stop)
        return service.finished
    finally:
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- bulk


def populate(root: Path | str, *, executions: int, steps_per_execution: int = 4,
             seed: int = 0, running: int = 1) -> None:
    """Bulk-build a store for benchmarks and tests.

    Writes ``executions`` finished executions (about 90 % ``completed``, the rest
    ``failed`` at their last step) and then ``running`` in-flight ones, each with exactly
    ``steps_per_execution`` step rows, so ``steps`` gets
    ``(executions + running) * steps_per_execution`` rows. About one finished execution in
    three also gets an artifact row whose file did not exist (``file_size`` 0). Finished
    executions' ``created_at`` are spread evenly over the past 7 days (ending ten minutes
    ago), in insertion order, so the newest is last; in-flight ones follow, created in the
    last few minutes.

    An in-flight execution's row says ``pending`` (``started_at`` NULL, totals 0); its
    steps ``0 .. n-2`` are ``completed`` and step ``n-1`` is ``running`` (started a few
    seconds ago, with ``{"ESTIMATED_DURATION": "120"}`` metadata). Log files are written
    for in-flight executions only: every step has one, and step 0's includes an ANSI
    escape line, a Rich-markup-like line and a line with invalid UTF-8. Bulk rows have no
    log files.

    Uses the same schema and pragmas as :func:`run` (an existing store is appended to) and
    ``executemany`` in large transactions: 100 000 executions with 400 000 steps take
    seconds. ``seed`` makes ids and contents reproducible. The connection is closed at the
    end (``-wal``/``-shm`` are checkpointed and removed).

    Raises ``ValueError`` when ``executions`` or ``running`` is negative or
    ``steps_per_execution`` is below 1, ``OSError``/``sqlite3.Error`` as :func:`open_store`.
    """
    if executions < 0 or running < 0:
        raise ValueError("executions and running must not be negative")
    if steps_per_execution < 1:
        raise ValueError("steps_per_execution must be at least 1")
    root = Path(root)
    rng = random.Random(seed)
    conn = open_store(root)
    try:
        now = time.time()
        span_end = now - 600.0
        span = 7 * 86400.0
        gap = span / max(executions, 1)
        chunk = 25000
        bulk = _Bulk(rng, steps_per_execution)
        for first in range(0, executions, chunk):
            for number in range(first, min(first + chunk, executions)):
                bulk.execution(span_end - span + number * gap)
            bulk.flush(conn)
        for number in range(running):
            _in_flight_execution(conn, root, rng, now, number, running, steps_per_execution)
    finally:
        conn.close()


def _step_names(script: _Script, count: int) -> list[str]:
    names = [spec.name for spec in script.steps][:count]
    names.extend(f"step_{index}" for index in range(len(names), count))
    return names


def _bulk_command(script: _Script) -> str:
    return script.command.replace("{sha}", "0c0ffee").replace("{date}", "2026-01-01")


class _Bulk:
    """Row factory for :func:`populate`: per-script constants computed once."""

    _ARTIFACT_NAMES = ("report.html", "output.csv", "model.pkl", "run.log")

    def __init__(self, rng: random.Random, n_steps: int) -> None:
        self.rng = rng
        self.n_steps = n_steps
        self.iso = _FastIso()
        self.scripts = [
            (script, _bulk_command(script), _json(list(script.tags)),
             _step_names(script, n_steps))
            for script in _SCRIPTS
        ]
        self.exec_rows: list[tuple[object, ...]] = []
        self.step_rows: list[tuple[object, ...]] = []
        self.artifact_rows: list[tuple[object, ...]] = []

    def execution(self, created: float) -> None:
        """Append one finished execution (and its steps, maybe an artifact) to the rows."""
        rng, iso, n_steps = self.rng, self.iso, self.n_steps
        random_ = rng.random
        script, command, tags, names = self.scripts[rng.randrange(len(self.scripts))]
        execution_id = _uuid4(rng)
        failed = random_() < 0.1
        exit_code = (1, 2, 137)[rng.randrange(3)] if failed else 0
        t = created + 0.1 + random_() * 0.1
        step_id = ""
        append_step = self.step_rows.append
        last = n_steps - 1
        for index, name in enumerate(names):
            step_id = _uuid4(rng)
            begin = iso(t)
            t += 0.5 + random_() * 29.5
            if failed and index == last:
                append_step((step_id, execution_id, name, "", index, "failed", exit_code,
                             f"exit status {exit_code}", begin, begin, iso(t), None, 0, "{}"))
            else:
                append_step((step_id, execution_id, name, "", index, "completed", 0, None,
                             begin, begin, iso(t), None, 0, "{}"))
            t += 0.001
        self.exec_rows.append((
            execution_id, script.name, command, script.working_directory,
            "failed" if failed else "completed", exit_code,
            f"Step '{names[-1]}' failed: exit status {exit_code}" if failed else None,
            iso(created), iso(created + 0.0004), iso(t + 0.008), "{}",
            script.users[rng.randrange(len(script.users))], tags, n_steps,
            n_steps - 1 if failed else n_steps, last, "{}",
        ))
        if random_() < 1 / 3:
            name = self._ARTIFACT_NAMES[rng.randrange(len(self._ARTIFACT_NAMES))]
            self.artifact_rows.append((
                _uuid4(rng), execution_id, step_id, name, "Bulk artifact",
                f"{script.working_directory}/{name}", "", 0, "", "other",
                iso(t - 0.002), "[]", 1, None, "{}",
            ))

    def flush(self, conn: sqlite3.Connection) -> None:
        """Insert the collected rows in one transaction and start over."""
        conn.executemany(_INSERT_EXECUTION, self.exec_rows)
        conn.executemany(_INSERT_STEP, self.step_rows)
        conn.executemany(_INSERT_ARTIFACT, self.artifact_rows)
        conn.commit()
        self.exec_rows, self.step_rows, self.artifact_rows = [], [], []


def _in_flight_execution(conn: sqlite3.Connection, root: Path, rng: random.Random,
                         now: float, number: int, running: int, n_steps: int) -> None:
    script = _SCRIPTS[number % len(_SCRIPTS)]
    execution_id = _uuid4(rng)
    # Created 5 to 1 minutes ago, in order; the running step started 2-5 s ago and the
    # earlier steps share the time in between.
    created = now - 300.0 + 240.0 * number / running
    running_start = now - 2.0 - 3.0 * rng.random()
    weights = [0.2 + rng.random() for _ in range(n_steps - 1)]
    available = running_start - created - 0.15 - 0.001 * (n_steps - 1)
    durations = [available * weight / sum(weights) for weight in weights]
    t = created
    conn.execute(_INSERT_EXECUTION, (
        execution_id, script.name, _bulk_command(script), script.working_directory,
        "pending", None, None,
        _iso_from_epoch(created), None, None, _json({"CI": "false"}), script.users[0],
        _json(list(script.tags)), 0, 0, -1, _json({"trigger": "manual"}),
    ))
    conn.commit()
    t += 0.15
    for index, name in enumerate(_step_names(script, n_steps)):
        step_id = _uuid4(rng)
        begin = _iso_from_epoch(t)
        is_running = index == n_steps - 1
        texts: list[str | bytes] = [f"Starting {name}..."]
        if index == 0:
            texts += ["\x1b[1m\x1b[32mready\x1b[0m",
                      "[bold red]not markup[/] [@click=app.quit]x[/]",
                      b"latin-1 bytes: caf\xe9 \xff"]
        lines = [_log_line(_iso_from_epoch(t + 0.001 * (k + 1)), text)
                 for k, text in enumerate(texts)]
        if is_running:
            row = (step_id, execution_id, name, "", index, "running", None, None, begin, begin,
                   None, None, 0, _json({"ESTIMATED_DURATION": "120"}))
        else:
            t += durations[index]
            lines.append(_log_line(_iso_from_epoch(t - 0.001), f"{name} done"))
            row = (step_id, execution_id, name, "", index, "completed", 0, None, begin, begin,
                   _iso_from_epoch(t), None, 0, "{}")
            t += 0.001
        conn.execute(_INSERT_STEP, row)
        conn.commit()
        _write_log(root, execution_id, index, step_id, lines)


# --------------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stepflow_top.demo.writer",
        description="Simulate a StepFlow Monitor service writing to a storage root.",
    )
    parser.add_argument("root", metavar="DIR", help="storage root to create or append to")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="time factor: 2 runs scripts twice as fast (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible content")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status.

    ``argv`` defaults to ``sys.argv[1:]``. SIGINT and SIGTERM (when called from the main
    thread) set a stop event, so the writer closes its connection and the process exits 0
    without a traceback. The writer runs in a worker thread so that the signal handler
    never runs inside ``Event.wait``. Returns 0 on a normal or signalled end, 1 when the
    writer failed (the error is printed on stderr), 2 for bad arguments (argparse exits).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be positive")
    if args.seconds is not None and args.seconds < 0:
        parser.error("--seconds must not be negative")

    stop = threading.Event()
    outcome: dict[str, object] = {}

    def handle_signal(signum: int, frame: object) -> None:
        stop.set()

    previous: dict[int, Callable[..., object] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle_signal)

    def work() -> None:
        try:
            outcome["finished"] = run(args.root, seconds=args.seconds, speed=args.speed,
                                      seed=args.seed, stop=stop)
        except Exception as exc:  # reported by the main thread
            outcome["error"] = exc

    if not args.quiet:
        print(f"stepflow demo writer: writing to {args.root} (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
    worker = threading.Thread(target=work, name="stepflow-demo-writer", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        stop.set()
        worker.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
    if "error" in outcome:
        print(f"stepflow demo writer: error: {outcome['error']}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"stepflow demo writer: {outcome.get('finished', 0)} executions finished",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
