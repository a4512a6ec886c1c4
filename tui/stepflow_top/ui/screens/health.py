"""Screen 2 (key 2): WAL state, checkpoint history, warnings and integrity checks."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Label,
    ProgressBar,
    Sparkline,
    Tab,
    TabbedContent,
    TabPane,
    Tabs,
)

from ... import formatting
from ...live.health import HealthState
from ...live.stores import MergedSnapshot
from ...store.text import literal
from ...wal.history import CheckpointEvent
from ...wal.results import State
from ..widgets import KeyedTable, StoreBar, TextPanel, cell

if TYPE_CHECKING:
    from ...live.checks import CheckReport

VERDICTS = {  # a check's state: symbol and word, never colour alone (UX.md #8)
    State.OK: ("✓ healthy", "bold green"),
    State.WARNING: ("! needs a look", "bold yellow"),
    State.CRITICAL: ("✗ problems found", "bold red"),
    State.UNKNOWN: ("? could not check", "bold magenta"),
    State.CANCELLED: ("⊘ cancelled", "dim"),
}

HISTORY_COLUMNS = (("time", "Time"), ("event", "Event"), ("frames", "Frames"),
                   ("before", "WAL before"), ("after", "WAL after"))
CHECK_COLUMNS = (("name", "Check"), ("result", "Result"), ("duration", "Took"),
                 ("details", "Details"))
EVENT_WORDS = {
    "wal_reset": "WAL reset", "truncate": "TRUNCATE checkpoint", "backfill": "backfill",
    "interrupted": "interrupted checkpoint", "wal_deleted": "-wal deleted",
    "wal_created": "-wal created",
}


COMPACT_SIZE = (80, 24)  # columns, rows: smaller terminals get the one-column layout


class HealthScreen(Screen):
    """Live database health; checks run off the UI thread on their own connection."""

    BINDINGS = [
        # Also the App's key: bound here first so the footer shows it first, and a
        # narrow terminal cuts the check keys instead (help lists them all).
        Binding("question_mark,f1", "app.help", "Help", key_display="?"),
        Binding("c", "check('quick')", "quick_check"),
        Binding("I", "check('full')", "integrity_check"),
        Binding("C", "check('consistency')", "StepFlow checks"),
        Binding("x", "cancel_check", "Cancel check"),
        Binding("h", "tab('history')", "History", show=False),
        Binding("i", "tab('integrity')", "Integrity", show=False),
        Binding("right_square_bracket", "next_store", "Next store", key_display="]"),
    ]

    def compose(self) -> ComposeResult:
        yield StoreBar()
        labels = self.app.store_labels
        if len(labels) > 1:  # a tab per store: ] or a click shows the next one
            yield Tabs(*(Tab(Text(literal(label)), id=f"store-{i}") for i, label in enumerate(labels)),
                       id="stores")
        with Horizontal(id="figures"):
            yield TextPanel(id="wal-figures")
            yield TextPanel(id="db-figures")
        with Horizontal(id="sparklines"):
            with Vertical():
                yield Label("WAL file size", id="wal-spark-label")
                yield Sparkline([], id="wal-spark")
            with Vertical():
                yield Label("frames waiting for checkpoint", id="pending-spark-label")
                yield Sparkline([], id="pending-spark")
        with TabbedContent(initial="history"):
            with TabPane("Checkpoint history", id="history"):
                yield TextPanel(id="history-summary")
                yield KeyedTable(HISTORY_COLUMNS, id="history-table")
            with TabPane("Integrity", id="integrity"):
                yield TextPanel(id="check-state")
                yield ProgressBar(total=1.0, show_eta=False, id="check-progress")
                yield KeyedTable(CHECK_COLUMNS, id="check-table")
                yield TextPanel(id="check-details")
        yield Footer()

    def on_mount(self) -> None:
        self.call_after_refresh(self._watch_app)

    def on_resize(self, event) -> None:
        """Below COMPACT_SIZE (columns, rows) the figures stack in one column and the
        screen scrolls, so the checkpoint history keeps a usable height (app.tcss)."""
        width, height = event.size
        self.set_class(width < COMPACT_SIZE[0] or height < COMPACT_SIZE[1], "compact")

    def _watch_app(self) -> None:
        self.watch(self.app, "health", self._show_health)
        self.watch(self.app, "integrity", self._show_integrity)
        self.watch(self.app, "integrity_progress", self._show_progress)
        if self._several:
            self.watch(self.app, "health_store", self._show_store)

    def _show_store(self, index: int) -> None:
        self.query_one("#stores", Tabs).active = f"store-{index}"
        self._show_health(self.app.health)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tabs.id == "stores" and event.tab.id is not None:
            self.app.show_health_of(int(event.tab.id.removeprefix("store-")))

    # -- WAL -----------------------------------------------------------------
    def _show_health(self, state: HealthState | None) -> None:
        if state is None:
            return
        wal, db = self.query_one("#wal-figures", TextPanel), self.query_one("#db-figures", TextPanel)
        if state.sample is None:
            wal.update(cell(state.error or "no sample yet", "bold red"))
            return
        sample = state.sample
        wal.update(_wal_text(sample))
        db.update(_db_text(sample, self._store_snapshot()))
        self.query_one("#wal-spark", Sparkline).data = list(state.wal_sizes) or [0]
        self.query_one("#pending-spark", Sparkline).data = list(state.pending) or [0]
        self.query_one("#wal-spark-label", Label).update(
            f"WAL file size (now {formatting.size(sample.wal_size or 0)}, "
            f"peak {formatting.size(max(state.wal_sizes, default=0))})")
        self.query_one("#pending-spark-label", Label).update(
            f"frames waiting for checkpoint (now {sample.pending or 0})")
        self._show_history(state)

    def _show_history(self, state: HealthState) -> None:
        summary = Text(no_wrap=True, overflow="ellipsis")
        for label in ("wal_reset", "truncate", "backfill", "interrupted", "wal_deleted"):
            n = state.counts.get(label, 0)
            summary.append(f"{EVENT_WORDS[label]}: {n}", "bold" if n else "dim")
            if label in state.rates:
                summary.append(f" ({state.rates[label]:.1f}/min)", "dim")
            summary.append("   ")
        if not state.events:
            summary.append("\nNo checkpoint seen yet. SQLite keeps no history: it is inferred "
                           "from samples taken while stepflow-top runs.", "dim")
        self.query_one("#history-summary", TextPanel).update(summary)
        now = self.app.now
        rows, seen = [], {}
        for event in reversed(state.events[-200:]):
            key = f"{event.wall!r}-{event.label}-{event.salt1}-{event.frames}"
            seen[key] = seen.get(key, 0) + 1  # the same key twice: number the repeats
            rows.append((f"{key}-{seen[key]}", _event_cells(event, now)))
        self.query_one("#history-table", KeyedTable).show_rows(rows)

    # -- integrity -----------------------------------------------------------
    def _show_progress(self, progress: tuple[float, str] | None) -> None:
        bar = self.query_one("#check-progress", ProgressBar)
        state = self.query_one("#check-state", TextPanel)
        if progress is None:
            bar.update(progress=0 if self.app.integrity is None else 1.0)
            if self.app.integrity is None:
                state.update(cell("No check has run yet: c quick_check · I integrity_check · "
                                  "C StepFlow consistency · x cancel", "dim"))
            return
        fraction, phrase = progress
        bar.update(progress=fraction)
        state.update(cell(f"running: {phrase}  (x cancels)", "bold"))

    def _show_integrity(self, report: CheckReport | None) -> None:
        if report is None:
            return
        state = self.query_one("#check-state", TextPanel)
        when = datetime.fromtimestamp(report.started).strftime("%H:%M:%S")
        verdict, style = VERDICTS[report.state]
        why = f" ({report.error})" if report.error else ""
        state.update(cell(
            f"{verdict}{why} — run at {when}, took {report.duration_s:.2f}s, longest snapshot "
            f"of the live database {report.snapshot_s:.2f}s", style))
        self.query_one("#check-table", KeyedTable).show_rows(
            (r.name, [
                cell(r.name),
                cell(f"{VERDICTS[r.severity][0].split()[0]} {r.status}", VERDICTS[r.severity][1]),
                cell(f"{r.duration_s:.2f}s"),
                cell("; ".join(r.details[:3]) + (" …" if len(r.details) > 3 else "")),
            ])
            for r in report.results
        )

    def on_data_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        """The selected check's findings, in full, below the table."""
        report = self.app.integrity
        if event.data_table.id != "check-table" or report is None:
            return
        result = next((r for r in report.results if r.name == event.row_key.value), None)
        details = self.query_one("#check-details", TextPanel)
        if result is None or not result.details:
            details.update(cell(f"{event.row_key.value}: nothing to report", "dim"))
            return
        text = Text()
        text.append(f"{result.name} ({result.status}, {len(result.details)} lines)\n", "bold")
        for line in result.details:
            text.append(literal(line) + "\n")
        details.update(text)

    # -- actions -------------------------------------------------------------
    @property
    def _several(self) -> bool:
        return len(self.app.store_labels) > 1


    def _store_snapshot(self):
        """The latest snapshot of the store shown (one of several: its own part)."""
        snapshot = self.app.snapshot
        if isinstance(snapshot, MergedSnapshot):
            return snapshot.parts[self.app.health_store].snapshot
        return snapshot

    def check_action(self, action: str, parameters) -> bool | None:
        return self._several if action == "next_store" else True

    def action_next_store(self) -> None:
        """Show the next store's WAL, checkpoint history and checks."""
        self.app.action_next_store()

    def action_check(self, kind: str) -> None:
        self.action_tab("integrity")
        self.app.start_checks(kind)

    def action_cancel_check(self) -> None:
        self.app.cancel_checks()

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = tab
        tabs.scroll_visible(animate=False)  # below the figures on a compact screen


def _wal_text(sample) -> Text:
    text = Text()
    text.append("WAL\n", "bold underline")
    if not sample.wal_exists:
        text.append("no -wal file: no connection has the database open in WAL mode\n", "dim")
        return text
    wal = sample.wal_dict()
    rows = (
        ("file size", formatting.size(sample.wal_size)),
        ("live size", formatting.size(sample.live_wal_bytes)),
        ("frames", wal.get("frames")),
        ("backfilled", wal.get("backfilled")),
        ("pending", wal.get("pending")),
        ("checkpoint seq", wal.get("checkpoint_seq")),
        ("salt-1", wal.get("salt1")),
        ("readers", ", ".join(map(str, wal.get("readers") or [])) or "none"),
    )
    for n, (label, value) in enumerate(rows):  # two label/value pairs a line
        shown = "—" if value is None else str(value)
        if n % 2 == 0:
            text.append(f"{label:<11}", "dim")
            text.append(f"{shown:<12}")
        else:
            text.append(f"{label:<15}", "dim")
            text.append(f"{shown}\n")
    return text


def _db_text(sample, snapshot) -> Text:
    db = sample.database_dict()
    text = Text()
    text.append("Database\n", "bold underline")
    rows = (
        ("size", formatting.size(db.get("size_bytes"))),
        ("page size", db.get("page_size")),
        ("pages", db.get("page_count")),
        ("freelist", db.get("freelist_count")),
        ("journal mode", snapshot.journal_mode if snapshot and not snapshot.error else "?"),
    )
    for label, value in rows:
        text.append(f"{label:<14}", "dim")
        text.append(f"{'—' if value is None else value}\n")
    return text


def _event_cells(event: CheckpointEvent, now: datetime) -> list[Text]:
    frames = "" if event.frames is None else (("≥" if event.at_least else "") + str(event.frames))
    word = EVENT_WORDS.get(event.label, event.label)
    if event.type == "wal_reset" and event.count > 1:
        word += f" ×{event.count}"
    return [
        cell(formatting.clock_time(datetime.fromtimestamp(event.wall), now)),
        cell(word),
        cell(frames),
        cell(formatting.size(event.wal_size_before)),
        cell(formatting.size(event.wal_size_after)),
    ]
