"""The monitor over several stores: ``stepflow-top A B`` (issue 10, "Several stores").

The App of one store, driven by a ``live.stores.StoreSet`` instead of one Refresher:
the executions list shows the merged rows (``MergedSnapshot``), the store bar a line
per store, and the health screen one store at a time (``]`` moves to the next). Each
store keeps its own probe, change feed and health monitor (checkpoint history,
warnings); one file-event watcher covers every database folder.

Which store ``paths`` names: on the health screen, the store shown there (its checks
run on it); elsewhere, the store of the open execution (its detail and log screens
read that store's files), else the first store.

A store that is missing or cannot be read is looked for again on each file event of
the database folders (a folder that appears restarts the watcher) and each fallback
refresh, not every second as when it is the only store: that second-by-second look
would wake every other store's probe too (measured: 1 % of a core, against 0 %).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message
from textual.reactive import var

from ..live.health import HealthMonitor, HealthState
from ..live.stores import MergedSnapshot, StoreSet
from ..store.locate import StorePaths
from ..store.models import DEFAULT_STALL_AFTER
from ..store.text import literal
from .app import StepflowTop
from .messages import ChecksDone

if TYPE_CHECKING:  # the check runners load when a check runs, not at start-up
    from ..live.checks import CheckReport


@dataclass
class StoresHealthReady(Message):
    """A health reading of every store, in the order of the stores."""

    states: tuple[HealthState, ...]


class SeveralStoresTop(StepflowTop):
    """``StepflowTop`` over ``stores`` (two or more); ``store_set`` reads them (one is
    made from ``stall_after`` and ``writer_tz`` when None). Other keywords are
    ``StepflowTop``'s."""

    healths: var[tuple[HealthState | None, ...]] = var(())
    health_store: var[int] = var(0)

    def __init__(self, stores: list[StorePaths], *, store_set: StoreSet | None = None,
                 persist_history: bool = True, **kwargs) -> None:
        self.stores = tuple(stores)
        store_set = store_set or StoreSet(
            list(stores), stall_after=kwargs.get("stall_after", DEFAULT_STALL_AFTER),
            writer_tz=kwargs.get("writer_tz", "infer"))
        self.store_set = store_set
        super().__init__(stores[0], refresher=store_set, persist_history=persist_history,
                         **kwargs)
        self.hints.set_folders(self._database_dirs())
        self.reports: dict[int, CheckReport] = {}  # the last check report of each store
        self._checked = 0  # the store the running check reads
        self.health_monitors = [self.health_monitor] + [
            HealthMonitor(p.database, persist=persist_history, probe=r.probe)
            for p, r in zip(stores[1:], store_set.refreshers[1:])]

    @property
    def store_labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.stores)

    @property
    def paths(self) -> StorePaths:
        """The store the current screen is about (see the module docstring)."""
        if self.current_mode == "health":
            return self.stores[self.health_store]
        return self.stores[self.store_set.store_of(self.request.execution_id)]

    @paths.setter
    def paths(self, _first: StorePaths) -> None:
        """The App of one store sets its store; here the stores are fixed at start."""

    def _database_dirs(self) -> list[Path]:
        return [p.database_dir for p in self.stores]

    def watch_folder(self, folder: Path | None) -> None:
        self.hints.set_folders(self._database_dirs() + ([folder] if folder else []))

    def _notify_failures(self, snapshot) -> None:
        """The notices of one store, each failed run named with its store."""
        if isinstance(snapshot, MergedSnapshot):
            snapshot = replace(snapshot, events=tuple(
                {**e, "name": f"{e['store']}: {e['name']}"} if e["type"] == "execution" else e
                for e in snapshot.events))
        super()._notify_failures(snapshot)

    # -- health, per store ---------------------------------------------------
    def _read_health(self, snapshot, shown) -> StoresHealthReady:
        """A health reading of every store after a refresh (in its worker thread); a
        store's own probe sample is reused only when this refresh took it."""
        latest = snapshot if snapshot is not None else shown
        wanted: list[tuple[str | None, object]] = []
        for i in range(len(self.stores)):
            part = (latest.parts[i].snapshot if isinstance(latest, MergedSnapshot)
                    and i < len(latest.parts) else None)
            journal = None if part is None or part.error else part.journal_mode
            fresh = snapshot is not None and part is not None and i in latest.fresh
            wanted.append((journal, part.sample if fresh else None))
        return StoresHealthReady(tuple(
            monitor.sample(journal, taken)
            for monitor, (journal, taken) in zip(self.health_monitors, wanted)))

    def on_stores_health_ready(self, message: StoresHealthReady) -> None:
        if not self.paused:
            self.healths = message.states
            self.health = message.states[self.health_store]
        for label, monitor, state in zip(self.store_labels, self.health_monitors,
                                         message.states):
            for warning in monitor.raised(state):
                self.notify(warning.message, title=f"Database health: {literal(label)}",
                            severity="warning", markup=False, timeout=10)

    def start_checks(self, kind: str) -> None:
        if not self._checking:
            self._checked = self.stores.index(self.paths)
        super().start_checks(kind)

    def on_checks_done(self, message: ChecksDone) -> None:
        super().on_checks_done(message)
        self.reports[self._checked] = message.report
        # The store shown may have changed while the check ran.
        self.integrity = self.reports.get(self.health_store)

    def action_next_store(self) -> None:
        """The health screen shows the next store."""
        self.show_health_of((self.health_store + 1) % len(self.stores))

    def show_health_of(self, index: int) -> None:
        """The health screen shows store ``index`` (its WAL, checkpoints and its last
        check's report)."""
        if index == self.health_store:
            return
        self.health_store = index
        if index < len(self.healths):
            self.health = self.healths[index]
        self.integrity = self.reports.get(index)

    def on_unmount(self) -> None:
        super().on_unmount()
        for monitor in self.health_monitors[1:]:
            monitor.close()
