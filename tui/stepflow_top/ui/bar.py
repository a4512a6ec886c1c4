"""The store bar at the top of every screen."""

from __future__ import annotations

from rich.text import Text

from ..store.models import Status
from ..store.text import literal
from .widgets import TextPanel

STATUS_STYLES = {
    Status.RUNNING: "bold cyan",
    Status.STALLED: "bold yellow",
    Status.PENDING: "dim",
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.CANCELLED: "magenta",
    Status.UNKNOWN: "",
}
STEP_STYLES = {"running": "bold cyan", "completed": "green", "failed": "bold red", "pending": "dim"}
BAR_ORDER = (Status.RUNNING, Status.STALLED, Status.PENDING, Status.FAILED, Status.COMPLETED,
             Status.CANCELLED, Status.UNKNOWN)


class StoreBar(TextPanel):
    """Store path, journal mode, LIVE/PAUSED badge, counts by effective status, and
    any warning or error. It watches the app's ``snapshot`` and ``paused``."""

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._redraw)
        self.watch(self.app, "paused", self._redraw)
        self.watch(self.app, "health", self._redraw)
        self.watch(self.app, "now", self._redraw)  # live runs can turn stalled

    def _redraw(self, _value=None) -> None:
        app = self.app
        snapshot = app.snapshot
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("stepflow-top ", "bold")
        if app.paused:
            text.append(" ⏸ PAUSED ", "reverse bold yellow")
        else:
            text.append(" ● LIVE ", "reverse bold green")
        if snapshot is not None and not snapshot.error:
            text.append(f"  journal={snapshot.journal_mode}")
        text.append(f"  {literal(app.paths.database)}")
        text.append("\n")
        if snapshot is None:
            text.append("reading…", "dim")
        elif snapshot.error:
            text.append(f"✗ {literal(snapshot.error)} — retrying", "bold red")
        else:
            counts = snapshot.counts
            by_status = counts.by_status(app.now, app.stall_after)
            n = counts.executions
            text.append(f"{n} execution{'' if n == 1 else 's'}")
            for status in BAR_ORDER:
                n = by_status.get(status.value, 0)
                if n or status in (Status.RUNNING, Status.FAILED):
                    text.append("  ")
                    text.append(f"{status.label} {n}", STATUS_STYLES[status])
            if snapshot.journal_mode != "wal":
                text.append("\n")
                text.append(
                    f"⚠ journal_mode={literal(snapshot.journal_mode)}, not WAL: every read "
                    "briefly blocks the writer's commits (stepflow-top's reads are short "
                    "and fully fetched)",
                    "bold yellow",
                )
        health = app.health
        for warning in health.warnings if health else ():
            if warning.code != "not_wal":  # said above, from the connection's own answer
                text.append(f"\n⚠ {literal(warning.message)} (2: health)", "bold yellow")
        self.update(text)
