"""The TUI's present way in to the StepFlow consistency checks: ui/app.py imports
:func:`run_consistency_checks` from here. The checks live in ``store.consistency`` and
``live.checks.run_checks`` runs them (on a private copy); delete this module once
ui/app.py calls ``run_checks(paths, "consistency", ...)`` itself.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Callable

from .live.checks import run_checks
from .store.consistency import CONSISTENCY_CHECKS
from .store.locate import locate_store
from .wal.integrity import CheckResult

__all__ = ["run_consistency_checks"]


def run_consistency_checks(
    path: str | os.PathLike[str],
    *,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[CheckResult]:
    """The consistency results for the store at ``path`` (root, ``database/`` or the
    ``.db`` file), one per :data:`CONSISTENCY_CHECKS` name. Whether a service has the
    database open is not known here, so no run is called lost (stalled ones are)."""
    report = run_checks(locate_store(path), "consistency", now=datetime.now(),
                        writer_attached=None, progress=progress, cancel=cancel)
    if report.error:
        return [CheckResult.stopped(n, "error", report.error) for n in CONSISTENCY_CHECKS]
    return list(report.results)
