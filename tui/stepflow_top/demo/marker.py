"""The demo writer only writes to storage roots it created itself.

Pointed at a real StepFlow store, the demo writer used to append simulated runs to it.
Every root the demo creates carries a marker file, :data:`MARKER_NAME`, beside
``database/``: a file, so that the schema stays the real service's and the mark survives
restarts. :func:`claim_root` refuses any file, and any non-empty folder without it.
Standard library only.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MARKER_NAME", "ForeignStoreError", "claim_root"]

#: The marker file in a storage root the demo created.
MARKER_NAME = ".stepflow-top-demo"

_MARKER_TEXT = (
    "This storage root was created by stepflow-top's demo writer and holds simulated\n"
    "StepFlow runs. The demo writer only writes to folders that carry this file.\n"
)

# What a storage root holds (STEPFLOW_STORE.md, "Layout"); stepflow.db directly inside
# the folder means it is a store's database/ folder.
_STORE_ENTRIES = ("database", "executions", "artifacts", "stepflow.db")


class ForeignStoreError(Exception):
    """The path is a file, or a folder holding a store the demo did not create; ``str()``
    is one line for people."""


def claim_root(root: Path | str) -> Path:
    """Make sure the demo may write to ``root``, marking it when the demo creates it.

    A folder that does not exist yet, or is empty, is created (``mkdir -p``) and marked.
    A folder that already carries the marker is the demo's own (a restart). Returns
    ``root`` as a ``Path``.

    Raises :class:`ForeignStoreError`, saying what it found, when ``root`` is a file (say,
    a store's ``stepflow.db``) or a non-empty folder without the marker: a real store, a
    store's ``database/`` or ``executions/`` folder, a demo store made before stores were
    marked, anything else. Raises ``OSError`` when the folder cannot be created or marked.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ForeignStoreError(f"{root} is a file, not a folder; the demo writer only "
                                f"writes to a new or empty folder")
    marker = root / MARKER_NAME
    if marker.is_file():
        return root
    found = [name for name in _STORE_ENTRIES if (root / name).exists()]
    if found:
        raise ForeignStoreError(
            f"{root} holds a StepFlow store the demo did not create ({found[0]} without "
            f"{MARKER_NAME}); the demo writer only writes to a new or empty folder")
    if root.is_dir() and any(root.iterdir()):
        raise ForeignStoreError(
            f"{root} is not empty and the demo did not create it (no {MARKER_NAME}); the "
            f"demo writer only writes to a new or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    # The marker is written before the database exists: a crash in between leaves a
    # marked root with no store, never an unmarked store of ours.
    marker.write_text(_MARKER_TEXT, encoding="utf-8")
    return root
