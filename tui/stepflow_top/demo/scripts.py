"""The scripts the simulated service runs: commands, environments, tags and, for each
step, its ``STEP_START`` marker, how long it takes, the lines it prints, its ``META:`` and
``ARTIFACT:`` markers and how it fails when it does.

Data only; :mod:`.catalogue` plans one run of a script and :mod:`.service` plays it.

What the scripts reproduce of real ones:

* Log lines may hold ANSI escape sequences, bracket text that looks like Rich/Textual
  markup, carriage returns, very long lines and (rarely, see :data:`INVALID_UTF8_LINES`)
  bytes that are not valid UTF-8.
* ``STEP_START`` markers may carry ``[stop_on_error=...]`` and ``[duration=...]``
  parameters, which the service stores in the step row (see :mod:`.engine`).
* Some steps fail with ``STEP_ERROR`` (a message, then the script exits with its own
  code); an optional step's failure lets the script carry on.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "INVALID_UTF8_LINES",
    "SCRIPTS",
    "ArtifactSpec",
    "Failure",
    "Script",
    "StepSpec",
]

@dataclass(frozen=True)
class Failure:
    """How a step fails when it does: the lines it prints, then ``STEP_ERROR:message``.

    A ``fatal`` failure ends the script at once with ``exit_code``; an optional step's
    failure (``fatal=False``, ``exit_code`` unused) lets the script carry on with its next
    step.
    """

    probability: float
    exit_code: int
    message: str
    lines: tuple[str | bytes, ...]
    fatal: bool = True


@dataclass(frozen=True)
class ArtifactSpec:
    """An ``ARTIFACT:name:description`` marker and the content of the file it names."""

    name: str
    description: str
    content: bytes


@dataclass(frozen=True)
class StepSpec:
    """One step of a script: its ``STEP_START`` marker is ``name + params``."""

    name: str
    seconds: tuple[float, float]
    lines: tuple[str | bytes, ...]
    #: Marker parameters as a script writes them, e.g. ``[stop_on_error=true]``.
    params: str = ""
    #: ``META:`` markers received right after ``STEP_START`` (one save each).
    meta: tuple[tuple[str, str], ...] = ()
    #: A ``META:PROGRESS:50`` marker half-way: the log file appears while the step runs.
    progress_meta: bool = False
    artifacts: tuple[ArtifactSpec, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True)
class Script:
    name: str
    users: tuple[str, ...]
    command: str
    working_directory: str
    environment: dict[str, str]
    tags: tuple[str, ...]
    steps: tuple[StepSpec, ...]


_CSV = b"id,region,amount\n1,eu-west,129.90\n2,us-east,12.50\n3,ap-south,87.00\n"
_HTML = (b"<!doctype html><html><head><title>Report</title></head><body>"
         b"<h1>Weekly report</h1><p>All figures in EUR.</p></body></html>\n")

SCRIPTS: tuple[Script, ...] = (
    Script(
        name="nightly-etl",
        users=("alice",),
        command="python3 /srv/etl/nightly_etl.py --date {date}",
        working_directory="/srv/etl",
        environment={"PYTHONUNBUFFERED": "1", "ETL_ENV": "prod",
                     "WAREHOUSE_HOST": "warehouse.internal", "TZ": "Europe/Berlin"},
        tags=("etl", "nightly", "prod"),
        steps=(
            StepSpec("environment_setup", (0.6, 1.2), (
                "Setting up environment...",
                "Environment setup completed successfully",
            ), params="[stop_on_error=true]"),
            StepSpec("extract_orders", (1.0, 3.0), (
                "Connecting to orders-db.internal:5432...",
                "Extracting orders since {date}...",
                "Extracted {n} rows from orders",
                "[bold]orders[/bold]: extraction done",
            ), params="[stop_on_error=true]", failure=Failure(
                0.10, 2,
                "psycopg2.OperationalError: could not connect to server: Connection refused",
                ("Connecting to orders-db.internal:5432...",
                 "WARNING: connection refused, retrying (2/3)",
                 "ERROR: could not connect to server: Connection refused"),
            )),
            StepSpec("transform", (1.0, 3.0), (
                "Applying 14 transformations...",
                "Dropped {n} duplicate rows",
                "Normalised currency codes [EUR, USD, GBP]",
                "Transformation finished in {sec}s",
            ), params="[stop_on_error=false]", meta=(("ESTIMATED_DURATION", "90"),),
                progress_meta=True),
            StepSpec("load_warehouse", (1.5, 4.0), (
                "Loading into warehouse.fact_orders...",
                "Upserted {n} rows",
                "[green]OK[/green] fact_orders",
            ), params="[stop_on_error=true]", artifacts=(
                ArtifactSpec("load_summary.json", "Load Summary",
                             b'{"table": "fact_orders", "rows": 48213, "status": "ok"}\n'),
            )),
            StepSpec("vacuum_staging", (0.5, 1.0), (
                "VACUUM staging.orders_raw",
                "Staging area cleaned",
            ), params="[stop_on_error=false]", failure=Failure(
                0.10, 0,
                "VACUUM skipped: staging.orders_raw is locked by another session",
                ("VACUUM staging.orders_raw",
                 "WARNING: could not obtain lock on relation \"orders_raw\""),
                fatal=False,
            )),
        ),
    ),
    Script(
        name="shell-build",
        users=("bob",),
        command="bash /home/bob/src/webapp/build.sh --release",
        working_directory="/home/bob/src/webapp",
        environment={"CI": "false", "NODE_ENV": "production",
                     "PATH": "/usr/local/bin:/usr/bin:/bin"},
        tags=("build", "webapp"),
        steps=(
            StepSpec("Environment Setup", (0.6, 1.5), (
                "ERROR: Could not open requirements file: [Errno 2] No such file or "
                "directory: 'requirements.txt'",
                "node v20.11.1, npm 10.2.4",
            ), meta=(("ESTIMATED_DURATION", "60"),)),
            StepSpec("Install Dependencies", (1.5, 4.0), (
                "npm ci --no-audit",
                "\x1b[2K\rDownloading packages  12%\rDownloading packages  57%"
                "\rDownloading packages 100%",
                "added {n} packages in {sec}s",
                "\x1b[33mnpm WARN\x1b[0m deprecated inflight@1.0.6: This module leaks memory",
            ), meta=(("DESCRIPTION", "Installing npm packages"),), failure=Failure(
                0.08, 1,
                "npm ERR! code ETIMEDOUT: request to https://registry.npmjs.org failed",
                ("npm ci --no-audit",
                 "\x1b[31mnpm ERR!\x1b[0m code ETIMEDOUT",
                 "\x1b[31mnpm ERR!\x1b[0m network request to https://registry.npmjs.org failed"),
            )),
            StepSpec("Compile", (1.0, 3.5), (
                "\x1b]0;webapp build\x07vite v5.1.4 building for production...",
                "transforming (1203) src/main.tsx",
                "\x1b[32m✓\x1b[39m {n} modules transformed.",
                "dist/assets/index-4f9a1c.js   \x1b[1m\x1b[33m612.40 kB\x1b[39m\x1b[22m",
                "(!) Some chunks are larger than 500 kB after minification.",
            ), progress_meta=True),
            StepSpec("Package", (0.5, 1.5), (
                "tar czf webapp.tar.gz dist/",
                "Package ready: webapp.tar.gz",
            ), artifacts=(
                ArtifactSpec("webapp.tar.gz", "Release bundle",
                             b"\x1f\x8b\x08\x00demo-archive\x00\x00" * 8),
            )),
        ),
    ),
    Script(
        name="data-report",
        users=("alice", "carol"),
        command="python3 /workspace/reports/weekly_report.py --format html",
        working_directory="/workspace",
        environment={"PYTHONUNBUFFERED": "1", "REPORT_WEEK": "{week}"},
        tags=("report", "weekly"),
        steps=(
            StepSpec("Environment Verification", (1.0, 2.0), (
                "Checking Python version...",
                "Verifying dependencies...",
                "✅ Environment verified successfully",
            ), meta=(("DESCRIPTION", "Checking Python environment and dependencies"),)),
            StepSpec("Data Collection", (1.5, 4.0), (
                "Querying sales API (page 1/4)...",
                "Querying sales API (page 4/4)...",
                "Collected {n} records",
            ), meta=(("ESTIMATED_DURATION", "180"),), failure=Failure(
                0.08, 1,
                "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable",
                ("Querying sales API (page 1/4)...",
                 "Traceback (most recent call last):",
                 '  File "/workspace/reports/weekly_report.py", line 88, in collect',
                 "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable"),
            )),
            StepSpec("Aggregation", (1.0, 2.5), (
                "Grouping by region and week...",
                "[INFO] 7 regions, 52 weeks",
                "Top region: eu-west ({pct}%)",
            )),
            StepSpec("Render Report", (0.5, 1.5), (
                "Rendering template report.html.j2",
                "[link=file:///workspace/out/report.html]report.html[/link] written",
            ), artifacts=(
                ArtifactSpec("report.html", "Weekly Report", _HTML),
                ArtifactSpec("sales.csv", "Raw sales data", _CSV),
            )),
        ),
    ),
    Script(
        name="model-train",
        users=("carol",),
        command="python3 train.py --epochs 5 --lr 0.001",
        working_directory="/home/carol/ml/churn",
        environment={"CUDA_VISIBLE_DEVICES": "0", "PYTHONHASHSEED": "0",
                     "WANDB_MODE": "offline"},
        tags=("ml", "training", "gpu"),
        steps=(
            StepSpec("Data Processing", (1.0, 3.0), (
                "Loading dataset...",
                "Cleaning data...",
                "Feature extraction...",
            ), meta=(("DESCRIPTION", "Processing training data"),), artifacts=(
                ArtifactSpec("processed_data.csv", "Processed Dataset", _CSV),
            )),
            StepSpec("Model Training", (2.0, 4.0), (
                "Initializing model...",
                "Training in progress...",
                "Epoch 1/5 loss=0.{n}",
                "Epoch 2/5 loss=0.{n}",
                "Epoch 3/5 loss=0.{n}",
                "Epoch 4/5 loss=0.{n}",
                "Epoch 5/5 loss=0.{n}",
                "Model training completed",
            ), meta=(("ESTIMATED_DURATION", "300"),), progress_meta=True, artifacts=(
                ArtifactSpec("model.pkl", "Trained Model",
                             b"\x80\x04\x95demo-model." * 16),
                ArtifactSpec("training.log", "Training Logs",
                             b"epoch,loss\n1,0.61\n2,0.43\n3,0.35\n4,0.31\n5,0.29\n"),
            ), failure=Failure(
                0.10, 137,
                "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
                ("Initializing model...",
                 "Epoch 1/5 loss=0.{n}",
                 "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),
            )),
            StepSpec("Model Evaluation", (1.0, 3.0), (
                "Running evaluation...",
                "Calculating metrics...",
                "Accuracy: {pct}%",
                "F1-Score: 0.94",
            ), artifacts=(
                ArtifactSpec("evaluation_report.html", "Evaluation Report", _HTML),
            )),
        ),
    ),
    Script(
        name="backup-verify",
        users=("ci", "bob"),
        command="bash /opt/backup/verify.sh /var/backups/db",
        working_directory="/opt/backup",
        environment={"BACKUP_DIR": "/var/backups/db", "PGHOST": "localhost"},
        tags=("backup", "ops"),
        steps=(
            StepSpec("Locate Snapshot", (0.5, 1.0), (
                "Latest snapshot: /var/backups/db/db-{date}.dump",
            )),
            StepSpec("Checksum", (1.0, 2.5), (
                "sha256sum db-{date}.dump",
                "checksum OK",
            ), failure=Failure(
                0.08, 3,
                "checksum mismatch for db-{date}.dump",
                ("sha256sum db-{date}.dump",
                 "\x1b[1;31mFAIL\x1b[0m checksum mismatch (expected 9f2c…, got 03ab…)"),
            )),
            StepSpec("Restore to Scratch", (1.5, 4.0), (
                "pg_restore -d scratch db-{date}.dump",
                "restored {n} rows in 12 tables",
            ), params=" [duration=240]"),
            StepSpec("Row Count Check", (0.5, 1.5), (
                "orders: {n} rows [ok]",
                "customers: {n} rows [ok]",
            )),
            StepSpec("Cleanup", (0.5, 1.0), (
                "DROP DATABASE scratch",
            ), artifacts=(
                ArtifactSpec("verify-report.txt", "Verification report",
                             b"snapshot ok\nrows ok\n"),
            )),
        ),
    ),
    Script(
        name="lint-and-test",
        users=("ci",),
        command="make -C /builds/stepflow lint test",
        working_directory="/builds/stepflow",
        environment={"CI": "true", "GIT_COMMIT": "{sha}", "PYTEST_ADDOPTS": "--color=yes"},
        tags=("ci", "tests"),
        steps=(
            StepSpec("ruff", (0.5, 1.5), (
                "ruff check .",
                "\x1b[1mAll checks passed!\x1b[0m",
            )),
            StepSpec("mypy", (1.0, 2.5), (
                "mypy src",
                "\x1b[1m\x1b[32mSuccess: no issues found in 84 source files\x1b(B\x1b[m",
            )),
            StepSpec("pytest unit", (1.5, 4.0), (
                "\x1b[1m============================= test session starts "
                "==============================\x1b[0m",
                "collected {n} items",
                "tests/test_api.py \x1b[32m........................\x1b[0m [ 40%]",
                "tests/test_models.py \x1b[32m.................................\x1b[0m [100%]",
                "\x1b[32m============================= {n} passed in {sec}s "
                "==============================\x1b[0m",
            ), params=" [python=3.12]", progress_meta=True, failure=Failure(
                0.15, 1,
                "AssertionError: assert [1, 2] == [1]",
                ("collected {n} items",
                 "tests/test_api.py \x1b[32m.......\x1b[31mF\x1b[0m",
                 "\x1b[31mE       AssertionError: assert [1, 2] == [1]\x1b[0m",
                 "\x1b[31m[bold]1 failed[/bold]\x1b[0m, [@click=app.quit]rerun[/] with -x",
                 "\x1b[31m==== 1 failed, 41 passed in 3.02s ====\x1b[0m"),
            )),
            StepSpec("pytest integration", (1.0, 3.0), (
                "collected 12 items",
                "tests/integration/test_db.py \x1b[32m............\x1b[0m [100%]",
                "[/] 12 passed",
            )),
        ),
    ),
    Script(
        name="deploy-staging",
        users=("ci", "bob"),
        command="./deploy.sh staging --tag {sha}",
        working_directory="/builds/webapp",
        environment={"DEPLOY_ENV": "staging", "KUBECONFIG": "/etc/kube/staging.yaml",
                     "IMAGE_TAG": "{sha}"},
        tags=("deploy", "staging"),
        steps=(
            StepSpec("Build Image", (1.5, 4.0), (
                "docker build -t registry.internal/webapp:{sha} .",
                "Step 7/12 : RUN npm ci",
                "Successfully built 3f2a9c1b7d4e",
            ), meta=(("ESTIMATED_DURATION", "120"),)),
            StepSpec("Push Image", (1.0, 2.5), (
                "The push refers to repository [registry.internal/webapp]",
                "{sha}: digest: sha256:5be1… size: 2841",
            )),
            StepSpec("Migrate DB", (0.5, 2.0), (
                "alembic upgrade head",
                "INFO  [alembic.runtime.migration] Running upgrade 41c2 -> 5d7e",
            ), failure=Failure(
                0.08, 1,
                'sqlalchemy.exc.ProgrammingError: relation "users_tmp" already exists',
                ("alembic upgrade head",
                 'ERROR [alembic] relation "users_tmp" already exists'),
            )),
            StepSpec("Rollout", (1.0, 3.0), (
                "kubectl rollout status deploy/webapp -n staging",
                'Waiting for deployment "webapp" rollout to finish: 1 of 3 updated replicas...',
                'deployment "webapp" successfully rolled out',
            ), progress_meta=True),
            StepSpec("Smoke Test", (0.5, 1.5), (
                "GET https://staging.example.com/health -> 200",
                "\x1b[32m✔\x1b[0m smoke tests passed",
            )),
        ),
    ),
    Script(
        name="db-migrate",
        users=("carol", "alice"),
        command="python3 manage.py migrate --noinput",
        working_directory="/srv/app",
        environment={"DJANGO_SETTINGS_MODULE": "app.settings.prod"},
        tags=("db",),
        steps=(
            StepSpec("Check Pending", (1.0, 2.5), (
                "Operations to perform:",
                "  Apply all migrations: admin, auth, billing, sessions",
            )),
            StepSpec("Apply Migrations", (3.0, 6.0), (
                "  Applying billing.0042_invoice_due_date... OK",
                "  Applying billing.0043_backfill_due_date... OK",
                "\tdone in {sec}s",
            ), failure=Failure(
                0.10, 1,
                "django.db.utils.IntegrityError: null value in column \"due_date\"",
                ("  Applying billing.0042_invoice_due_date... OK",
                 "  Applying billing.0043_backfill_due_date...",
                 'django.db.utils.IntegrityError: null value in column "due_date"'),
            )),
        ),
    ),
)

INVALID_UTF8_LINES = (
    b"Reading legacy export: caf\xe9_menu.csv (latin-1)",
    b"\xff\xfe binary junk from a subprocess: \x80\x81\x82",
    b"decoder said: \xc3\x28 is not a valid continuation byte",
)
