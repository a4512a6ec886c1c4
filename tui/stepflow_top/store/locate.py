"""Finding a StepFlow storage root from what the user typed.

Layout (STEPFLOW_STORE.md): ``<root>/database/stepflow.db``,
``<root>/executions/<execution_id>/step_<index>_<step_id>.log`` and
``<root>/artifacts/<execution_id>/<artifact_id>_<file name>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "stepflow.db"
ENV_VAR = "STEPFLOW_STORAGE_PATH"


@dataclass(frozen=True)
class StorePaths:
    """Where the parts of one store live; all paths absolute, none need exist yet."""

    root: Path
    database: Path

    @property
    def database_dir(self) -> Path:
        return self.database.parent

    @property
    def wal(self) -> Path:
        return self.database.with_name(self.database.name + "-wal")

    @property
    def shm(self) -> Path:
        return self.database.with_name(self.database.name + "-shm")

    @property
    def executions_dir(self) -> Path:
        return self.root / "executions"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    def execution_dir(self, execution_id: str) -> Path:
        return self.executions_dir / execution_id

    def step_log(self, execution_id: str, step_index: int, step_id: str) -> Path:
        """The log file the service rewrites whole each time the step's row is saved."""
        return self.execution_dir(execution_id) / f"step_{step_index}_{step_id}.log"


def locate_store(path: str | os.PathLike[str] | None = None) -> StorePaths:
    """Resolve a storage root, its ``database/`` folder or a ``.db`` file to StorePaths.

    ``None`` means ``$STEPFLOW_STORAGE_PATH``, else ``./storage``. Nothing is opened
    and nothing has to exist: a database that is not there yet is a state the app
    waits in, not an error.
    """
    if path is None:
        path = os.environ.get(ENV_VAR) or "storage"
    # Symbolic links are resolved once, here: a database reached through one is
    # watched where it really is (its -wal/-shm and the file events are beside it).
    return _locate(Path(path).expanduser().resolve())


def _locate(given: Path) -> StorePaths:
    if given.is_file() or given.suffix == ".db":
        database = given
        parent = database.parent
        root = parent.parent if parent.name == "database" else parent
        return StorePaths(root=root, database=database)
    if (given / DB_NAME).exists() and not (given / "database" / DB_NAME).exists():
        root = given.parent if given.name == "database" else given
        return StorePaths(root=root, database=given / DB_NAME)
    if given.name == "database" and not (given / "database").exists():
        return StorePaths(root=given.parent, database=given / DB_NAME)
    return StorePaths(root=given, database=given / "database" / DB_NAME)
