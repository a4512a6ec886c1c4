"""Finding a StepFlow storage root from what the user typed.

Layout (STEPFLOW_STORE.md): ``<root>/database/stepflow.db``,
``<root>/executions/<execution_id>/step_<index>_<step_id>.log`` and
``<root>/artifacts/<execution_id>/<artifact_id>_<file name>``.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "stepflow.db"
ENV_VAR = "STEPFLOW_STORAGE_PATH"


@dataclass(frozen=True)
class StorePaths:
    """Where the parts of one store live; all paths absolute, none need exist yet.

    ``name`` is the store's short name where several are watched at once (the Store
    column, the ``store`` field of events, the ``store`` label of metrics): the one
    given as ``NAME=PATH``, else the storage root's folder name."""

    root: Path
    database: Path
    name: str = ""

    @property
    def label(self) -> str:
        """``name``, or the storage root's folder name when none was given."""
        return self.name or self.root.name or str(self.root)

    @property
    def database_dir(self) -> Path:
        return self.database.parent

    @property
    def wal(self) -> Path:
        return self.database.with_name(self.database.name + "-wal")

    @property
    def executions_dir(self) -> Path:
        return self.root / "executions"

    def execution_dir(self, execution_id: str) -> Path:
        return self.executions_dir / execution_id

    def step_log(self, execution_id: str, step_index: int, step_id: str) -> Path:
        """The log file the service rewrites whole each time the step's row is saved."""
        return self.execution_dir(execution_id) / f"step_{step_index}_{step_id}.log"


class PathProblem(Exception):
    """The path given cannot lead to a store; ``str()`` is one line a person can act on."""


def locate_store(path: str | os.PathLike[str] | None = None) -> StorePaths:
    """Resolve a storage root, its ``database/`` folder or a ``.db`` file to StorePaths.

    ``None`` means ``$STEPFLOW_STORAGE_PATH``, else ``./storage``. Nothing is opened
    and nothing has to exist: a database that is not there yet is a state the app
    waits in, not an error. Raises :class:`PathProblem` when a folder on the way may
    not be entered (or the database's folder listed) by this process, or when the path
    names a file (it has a suffix other than ``.db``) that does not exist: a typo, not
    a store to wait for.
    """
    if path is None:
        path = os.environ.get(ENV_VAR) or "storage"
    # Symbolic links are resolved once, here: a database reached through one is
    # watched where it really is (its -wal/-shm and the file events are beside it).
    given = Path(path).expanduser().resolve()
    try:
        if given.suffix not in ("", ".db") and not given.exists():
            raise PathProblem(_no_such_file(given))
        paths = _locate(given)
    except PermissionError:
        paths = None
    closed = _closed_folder(given / DB_NAME if paths is None else paths.database)
    if closed is not None:
        raise PathProblem(f"cannot read the folder {closed} (permission denied): run "
                          "stepflow-top as a user who may read it")
    if paths is None:  # denied, yet every folder is open: a race with a chmod
        raise PathProblem(f"cannot read {given} (permission denied)")
    return paths


def locate_stores(given: list[str]) -> list[StorePaths]:
    """Resolve each ``PATH`` or ``NAME=PATH`` the user typed (see :func:`locate_store`).

    An empty list means ``$STEPFLOW_STORAGE_PATH``, whose roots are separated by ``:``
    as in ``$PATH``, else ``./storage``. Every store gets a short name (``NAME``, else
    its root's folder name). Raises :class:`PathProblem` for a path that cannot lead to
    a store, the same store given twice, or two stores with one name.
    """
    if not given:
        given = [part for part in os.environ.get(ENV_VAR, "").split(os.pathsep) if part]
    stores: list[StorePaths] = []
    for text in given or ["storage"]:
        name, path = _split_name(text)
        paths = locate_store(path)
        paths = StorePaths(paths.root, paths.database, name or paths.root.name)
        for other in stores:
            if other.database == paths.database:
                raise PathProblem(f"{paths.database} is given twice")
            if other.name == paths.name:
                raise PathProblem(f"two stores are named {paths.name!r}: name them, "
                                  f"e.g. {paths.name}-a={other.root} {paths.name}-b={paths.root}")
        stores.append(paths)
    return stores


def _split_name(text: str) -> tuple[str, str]:
    """``NAME=PATH`` into its parts; a path that merely contains ``=`` stays whole."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name and not os.path.exists(text):
        return name, path
    return "", text


def _no_such_file(given: Path) -> str:
    try:
        near = difflib.get_close_matches(given.name, os.listdir(given.parent), n=1)
    except OSError:
        near = []
    return f"no such file: {given}" + (f" (did you mean {near[0]}?)" if near else "")


def _closed_folder(database: Path) -> Path | None:
    """The first existing folder on the way to ``database`` that this process may not
    enter, or (the database's own folder) not list: SQLite must reach ``-wal`` and
    ``-shm`` beside the database, and file events need the folder readable. None when
    all can be read, or the rest of the way does not exist yet."""
    folder = database.parent
    for step in [*reversed(folder.parents), folder]:
        if not step.is_dir():
            return None
        if not os.access(step, os.R_OK | os.X_OK if step == folder else os.X_OK):
            return step
    return None


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
