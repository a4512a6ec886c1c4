"""``stepflow-top PATH… --wait EXECUTION``: follow one run until it ends, then exit with
its outcome, as ``gh run watch --exit-status`` does (cli.github.com/manual/gh_run_watch).

EXECUTION is an id, an id prefix, a name (its newest run) or ``latest``
(``store.lookup``), looked up in every store given. One line is printed per step
change (its effective status, name and duration) and one for the run's end:

    watching nightly-etl (3f2a9c1e) in prod, started 20:01:02
      ✓ completed  Extract  12s
      ● running    Transform
    ✗ nightly-etl (3f2a9c1e) failed after 41s: step Load failed (exit code 1)

Exit status: 0 completed; 1 failed, cancelled, lost (no service has the store open,
so nothing will ever finish it), deleted while watched, or a status word the service
never writes; 2 when there is no such run, the name or prefix is ambiguous (the
candidates are listed on stderr) or no store can be read. A run that has already ended
returns at once.

Changes come from the change feed (``live.events.change_feed``, reading through the same
``Refresher`` and probe): an event about this run, the service attaching or going away,
a replaced database or a bulk delete makes one read of this run (the run as the
refresher's detail), and that read decides what is printed. Between events nothing is
read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import aclosing
from datetime import datetime

from .. import formatting
from ..live.events import UNREADABLE, FeedOptions, change_feed
from ..live.refresher import Refresher, StoreSnapshot, ViewRequest
from ..store.connection import StoreUnavailable
from ..store.locate import StorePaths
from ..store.lookup import MAX_CANDIDATES, Candidate, find_executions
from ..store.models import (
    FINISHED_STEP,
    STEP_SYMBOLS,
    Execution,
    Judgement,
    Status,
    StepView,
)
from ..store.queries import StoreReader
from ..store.text import literal
from ..wal.probe import ProbeError
from ..wal.readonly import closed_wal_store
from . import USAGE, fail

COMPLETED, NOT_COMPLETED = 0, 1
#: Events after which this run is read again (others: WAL history, integrity).
_STORE_WIDE = frozenset({"writer", "database_replaced", "executions_deleted"})
_ENDED = {Status.COMPLETED: "completed", Status.FAILED: "failed",
          Status.CANCELLED: "was cancelled", Status.LOST: "is lost",
          Status.UNKNOWN: "has a status the service never writes"}


def run_wait(stores: list[StorePaths], args: argparse.Namespace) -> int:
    """Find ``args.wait`` in ``stores`` and follow it; returns the exit status (module
    docstring). Messages for people go to stderr, one line each."""
    refreshers = {p.label: Refresher(p, stall_after=args.stall_after, writer_tz=args.writer_tz)
                  for p in stores}
    try:
        found: list[tuple[StorePaths, Candidate]] = []
        errors: list[str] = []
        for paths in stores:
            try:
                found += [(paths, c) for c in _find(refreshers[paths.label], args.wait)]
            except StoreUnavailable as exc:
                errors.append(f"{paths.label}: {exc}" if len(stores) > 1 else str(exc))
        if len(errors) == len(stores):
            return fail("; ".join(errors))
        for error in errors:  # the other stores were searched all the same
            print(f"stepflow-top: {error}", file=sys.stderr)
        if not found:
            where = ", ".join(p.label for p in stores) if len(stores) > 1 else stores[0].database
            return fail(f"no execution {literal(args.wait)} in {where} (an id, an id prefix, "
                        "a name or latest)")
        if len(found) > 1:
            return _ambiguous(args.wait, found, several=len(stores) > 1)
        paths, candidate = found[0]
        for label, refresher in refreshers.items():
            if label != paths.label:  # a probe process each, no longer needed
                refresher.close()
        watch = _Watch(paths, candidate, refreshers[paths.label], several=len(stores) > 1)
        try:
            return asyncio.run(watch.follow(FeedOptions(
                fallback=args.refresh or 5.0, poll=args.poll, stall_after=args.stall_after,
                writer_tz=args.writer_tz)))
        except StoreUnavailable as exc:  # gone between the search and the first read
            return fail(str(exc))
    finally:
        for refresher in refreshers.values():
            refresher.close()


def _find(refresher: Refresher, query: str) -> list[Candidate]:
    """The candidates for ``query`` in one store; a closed store is read ``immutable``
    so that no ``-wal``/``-shm`` is created beside it. Raises StoreUnavailable."""
    database = refresher.paths.database
    try:
        wal_mode = refresher.probe.sample(database).wal_mode
    except ProbeError:
        wal_mode = None
    with StoreReader(refresher.paths).session(
            immutable=closed_wal_store(database, wal_mode)) as reader:
        return find_executions(reader, query)


def _ambiguous(query: str, found: list[tuple[StorePaths, Candidate]], several: bool) -> int:
    shown = found[:MAX_CANDIDATES]
    print(f"stepflow-top: {literal(query)} may mean {len(shown)}"
          f"{' or more' if len(found) > len(shown) else ''} executions; give the id "
          "(or more of it):", file=sys.stderr)
    for paths, candidate in shown:
        where = f"{literal(paths.label)}: " if several else ""
        print(f"  {where}{literal(candidate.describe())}", file=sys.stderr)
    return USAGE


class _Watch:
    """Prints what changed in one run at each read, and says when it ended."""

    def __init__(self, paths: StorePaths, candidate: Candidate, refresher: Refresher,
                 several: bool) -> None:
        self.paths = paths
        self.id = candidate.id
        self.refresher = refresher
        self.several = several
        self.request = ViewRequest(limit=0, execution_id=candidate.id)
        self.snapshot: StoreSnapshot | None = None
        self.steps: dict[str, str] = {}  # step id -> the effective status printed
        self.status: Status | None = None
        self.error_said = False

    async def follow(self, options: FeedOptions) -> int:
        """Print the run's state, then its changes until it ends; its exit status.
        Raises StoreUnavailable when the store cannot be read at the start."""
        code = self.look(first=True)
        if code is not None:
            return code
        # The feed reads through this watch's refresher (one probe process): a look
        # takes the events of the changes it read, and shows what they changed.
        async with aclosing(change_feed(self.paths, options,
                                        refresher=self.refresher)) as feed:
            pending = asyncio.ensure_future(anext(feed))
            # The feed takes its baseline synchronously in its first step: from here on
            # every change is an event, so one more read closes the gap before it.
            await asyncio.sleep(0)
            try:
                code = self.look()
                while code is None:
                    event = await pending
                    pending = asyncio.ensure_future(anext(feed))
                    code = self._on(event)
                return code
            finally:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    def _on(self, event: dict) -> int | None:
        kind = event["type"]
        if kind == UNREADABLE:
            print(f"stepflow-top: {event['error']} (still waiting)", file=sys.stderr, flush=True)
            return None
        ours = event.get("id", event.get("execution_id")) == self.id
        if ours or kind in _STORE_WIDE:
            return self.look()
        return None

    def look(self, first: bool = False) -> int | None:
        """Read the run once and print what changed; its exit status once it ended."""
        snapshot = self.refresher.refresh(self.request, datetime.now(), force=first)
        if snapshot is not None and snapshot.error:
            if first:
                raise StoreUnavailable(snapshot.error)
            if not self.error_said:
                print(f"stepflow-top: {snapshot.error} (still waiting)", file=sys.stderr,
                      flush=True)
                self.error_said = True
            return None
        self.error_said = False
        if snapshot is not None:
            self.snapshot = snapshot
        assert self.snapshot is not None
        detail = self.snapshot.detail
        if detail is None:
            print(f"⊘ execution {literal(self.id)} was deleted from the store", flush=True)
            return NOT_COMPLETED
        judgement = self.snapshot.judgement(datetime.now())
        e = detail.execution
        status = e.effective_status(judgement)
        if first:
            where = f" in {literal(self.paths.label)}" if self.several else ""
            print(f"watching {literal(e.name)} ({e.id[:8]}){where}, started "
                  f"{formatting.clock_time(e.start, judgement.now)}", flush=True)
        views = detail.step_views(judgement)
        for view in views:
            if self.steps.get(view.step.id) != view.status:
                self.steps[view.step.id] = view.status
                print(_step_line(view, judgement.now), flush=True)
        if status in (Status.RUNNING, Status.STALLED):
            if self.status is not None and status is not self.status:
                print(f"{status.label}: {literal(e.inferred_from(judgement) or '')}", flush=True)
            self.status = status
            return None
        print(_end_line(e, status, judgement, views, before=first), flush=True)
        return COMPLETED if status is Status.COMPLETED else NOT_COMPLETED


def _end_line(e: Execution, status: Status, judgement: Judgement,
              views: tuple[StepView, ...], before: bool) -> str:
    """``✗ deploy (3f2a9c1e) failed after 41s: step Build failed (exit code 3)``;
    ``before``: it had ended when the watch began."""
    line = f"{status.symbol} {literal(e.name)} ({e.id[:8]}) {_ENDED[status]}"
    if before:
        line += " (before stepflow-top looked)"
    if status is Status.LOST:
        line += f": {literal(e.inferred_from(judgement))}"
    elif status is Status.UNKNOWN:
        line += f": {literal(e.stored_status)}"
    else:
        line += f" after {formatting.duration(e.duration(judgement))}"
    failed = next((v for v in views if v.status == "failed"), None)
    if status is Status.FAILED and failed is not None:
        line += f": step {literal(failed.step.name)} failed"
    if e.exit_code is not None and status is not Status.COMPLETED:
        line += f" (exit code {e.exit_code})"
    return line


def _step_line(view: StepView, now: datetime) -> str:
    """``  ✓ completed  Extract  12s``: symbol, effective status, name, and the duration
    and exit code once it ended."""
    symbol = STEP_SYMBOLS.get(view.status, "?")
    line = f"  {symbol} {view.status:<10} {literal(view.step.name)}"
    took = view.duration(now)
    if view.status in FINISHED_STEP and took is not None:
        line += f"  {formatting.duration(took)}"
    if view.status == "failed" and view.step.exit_code is not None:
        line += f"  (exit code {view.step.exit_code})"
    return line
