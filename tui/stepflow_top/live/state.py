"""Where stepflow-top keeps what it remembers between runs: the XDG state directory.

``$XDG_STATE_HOME/stepflow-top`` (default ``~/.local/state/stepflow-top``; XDG Base
Directory Specification 0.8: "$XDG_STATE_HOME defines the base directory relative to
which user-specific state files should be stored", and a relative value is invalid and
ignored). Two things live there: ``settings.json`` (:mod:`.settings`) and one checkpoint
history per database under ``history/`` (:class:`~stepflow_top.wal.history.CheckpointHistory`).
Nothing is ever written beside the store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

APP = "stepflow-top"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's state directory: ``$XDG_STATE_HOME`` when set to an absolute path,
    else ``~/.local/state``. ``environ`` defaults to ``os.environ``."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".local" / "state"


def settings_path(base: Path | None = None) -> Path:
    """``<state dir>/stepflow-top/settings.json``; ``base`` replaces the state dir."""
    return (base or state_dir()) / APP / "settings.json"


def history_path(db_path: str | os.PathLike[str], base: Path | None = None) -> Path:
    """Where the checkpoint history of ``db_path`` is kept:
    ``<state dir>/stepflow-top/history/<sha1 of the absolute path>.jsonl`` (one file per
    database, never beside it); ``base`` replaces the state dir."""
    key = hashlib.sha1(os.path.abspath(os.fspath(db_path)).encode()).hexdigest()
    return (base or state_dir()) / APP / "history" / f"{key}.jsonl"
