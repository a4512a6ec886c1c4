"""The executions list's sort orders as SQL, and the status condition they share.

Only ``created_at`` has an index an ORDER BY can walk newest first (STEPFLOW_STORE.md:
indexes on status, created_at and user_name; the status and user indexes do not
order ties by time), so every other order is applied to the newest SORT_SCOPE rows.
"""

from __future__ import annotations

from .models import FINAL_EXECUTION, LIVE_STORED, Status

SORT_SCOPE = 10_000  # newest rows a sort other than by started orders
_LIVE_WORDS = ", ".join(f"'{w}'" for w in sorted(LIVE_STORED))
# Each sort as (SQL expression, descending) terms in the order users expect first;
# ``reverse`` flips every term. Status: live runs first, then failed, cancelled,
# completed (the stored word: stalled and lost are stored as running). Duration:
# start (started_at, else created_at) to completed_at, or to now while live.
_DURATION = (f"julianday(coalesce(completed_at, CASE WHEN lower(status) IN ({_LIVE_WORDS}) "
             "THEN :now END)) - julianday(coalesce(started_at, created_at))")
SORT_ORDERS: dict[str, tuple[tuple[str, bool], ...]] = {
    "started": (("created_at", True),),
    "status": ((f"CASE WHEN lower(status) IN ({_LIVE_WORDS}) THEN 0 "
                "WHEN lower(status) = 'failed' THEN 1 WHEN lower(status) = 'cancelled' THEN 2 "
                "WHEN lower(status) = 'completed' THEN 3 ELSE 4 END", False),
               ("created_at", True)),
    "name": (("name COLLATE NOCASE", False), ("created_at", True)),
    "user": (("user_name IS NULL", False), ("user_name COLLATE NOCASE", False),
             ("created_at", True)),
    "duration": ((f"({_DURATION}) IS NULL", False), (f"({_DURATION})", True),
                 ("created_at", True)),
    "exit": (("exit_code IS NULL", False), ("exit_code = 0", False), ("exit_code", True),
             ("created_at", True)),
}


def with_status(condition: str, params: list, status: Status | None) -> tuple[str, list]:
    """``condition`` narrowed to the stored words ``status`` can come from."""
    if status is None:
        return condition, params
    if status.value in FINAL_EXECUTION:
        return f"({condition}) AND lower(status) = ?", [*params, status.value]
    return f"({condition}) AND lower(status) IN ({_LIVE_WORDS})", params
