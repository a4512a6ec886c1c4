"""``stepflow-top PATH --check``: integrity and StepFlow consistency checks, once.

Exit status: 0 healthy, 1 a problem was found (printed, naming table/page or rows) or a
check could not finish (e.g. a copy that kept restarting under a busy writer), 2 the
store cannot be opened. Never a traceback for a store problem.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from .consistency import run_consistency_checks
from .store.connection import StoreUnavailable
from .store.locate import StorePaths
from .store.queries import StoreReader
from .store.text import literal
from .wal.integrity import CheckResult, run_integrity

INTEGRITY = ("quick_check", "foreign_key_check")
FULL_INTEGRITY = ("integrity_check", "foreign_key_check")


def run_checks(paths: StorePaths, *, full: bool = False) -> list[CheckResult]:
    """Integrity checks on a private copy of the database (the live snapshot is held
    about a second at most), then the StepFlow consistency checks."""
    report = run_integrity(paths.database, FULL_INTEGRITY if full else INTEGRITY)
    results = list(report.results)
    if all(r.status != "error" for r in results):
        results += run_consistency_checks(paths.database, now=datetime.now())
    return results


def run_check(paths: StorePaths, *, full: bool, as_json: bool) -> int:
    reader = StoreReader(paths)
    try:
        reader.open()  # exit 2 only for a store that cannot be opened at all
    except StoreUnavailable as exc:
        print(f"stepflow-top: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    results = run_checks(paths, full=full)
    ok = all(r.ok for r in results)
    if as_json:
        print(json.dumps({"ok": ok, "checks": [r.to_dict() for r in results]}, indent=2))
    else:
        for r in results:
            mark = "✓" if r.ok else "✗"
            print(f"{mark} {r.name:<20} {r.status:<9} {r.duration_s:6.2f}s")
            for line in r.details[:20]:
                print(f"    {literal(line)}")
            if len(r.details) > 20:
                print(f"    … and {len(r.details) - 20} more")
    return 0 if ok else 1
