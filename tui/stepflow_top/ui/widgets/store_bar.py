"""The store bar at the top of every screen.

Several stores (``live.stores``): a first line with the badge and the totals; then,
when the terminal has ROOMY_ROWS rows or more, one line per store (its name, LIVE or NO
DATA, counts, its service), else one compact line for all (``prod ● 3 running ✗ 1 ·
staging ◌ no service``), so that an 80x24 terminal keeps its rows for executions.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from ... import formatting
from ...live.health import HealthState
from ...live.stores import MergedSnapshot, StorePart, part_counts
from ...live.writer import WriterState, format_offset
from ...store.models import Status, local_offset
from ...store.text import literal
from .sight import in_sight
from .text_panel import TextPanel

ROOMY_ROWS = 30  # terminal rows from which each store of several gets its own line


BAR_ORDER = (Status.RUNNING, Status.STALLED, Status.LOST, Status.FAILED, Status.COMPLETED,
             Status.CANCELLED, Status.UNKNOWN)


def writer_line(writer: WriterState) -> Text:
    """``service: pid 1234 · last commit 19:55:36 · python app/main.py``, or that no
    service has the database open, or that it cannot be known; plus the writer's zone
    when it is not the reader's. Times are in the writer's zone, like the rows, and are
    clock times rather than ages, so the line changes with a commit, not every second
    (an age cost 0.7 KB/s to the terminal: tests/benchmarks/bench_tick_bytes.py)."""
    text = Text()
    last = writer.last_commit
    commit = ("" if last is None else
              f" · last commit {formatting.clock_time_abs(last, writer.offset)}")
    if writer.attached is None:
        text.append("service: unknown (its locks cannot be read here: nothing is called lost)",
                    "dim")
    elif writer.attached:
        pids = ", ".join(h.describe().split(" (")[0] for h in writer.holders) or "attached"
        text.append(f"service: {literal(pids)}{commit}")
    else:
        text.append(f"◌ no service has the database open{commit}", "bold magenta")
    if writer.offset != local_offset():
        text.append(f" · writer time {format_offset(writer.offset)} ({writer.offset_source})",
                    "bold")
    commands = [h.short_command for h in writer.holders if h.short_command]
    if writer.attached and commands:
        text.append(f" · {literal(commands[0])}", "dim")
    return text


class StoreBar(TextPanel):
    """Store path, journal mode, LIVE/PAUSED badge, counts by effective status, and
    any warning or error. It watches the app's ``snapshot`` and ``paused``."""

    _lines = -1  # newlines in the text shown
    _stale = False  # something changed while its screen was under another one
    _due = False  # a drawing is on its way

    def on_mount(self) -> None:
        self.app.screen_change_signal.subscribe(self, self._screen_changed)
        self.watch(self.app, "snapshot", self._redraw)
        self.watch(self.app, "paused", self._redraw)
        self.watch(self.app, "held", self._redraw)
        self.watch(self.app, "health", self._redraw)
        self.watch(self.app, "now", self._redraw)  # live runs can turn stalled

    def on_resize(self) -> None:
        self._redraw()

    def _screen_changed(self, screen) -> None:
        if screen is self.screen and self._stale:
            self._redraw()

    def _redraw(self, _value=None) -> None:
        # A refresh sets the app's snapshot and then its health reading, one message
        # after the other: one drawing for both, once those messages are handled.
        if not self._due:
            self._due = True
            self.call_later(self._draw)

    def _draw(self) -> None:
        self._due = False
        # Every screen has its own bar: only the one on screen does the work, the
        # others catch up when their screen is shown again.
        self._stale = not in_sight(self.screen)
        if self._stale:
            return
        app = self.app
        snapshot = app.snapshot
        if isinstance(snapshot, MergedSnapshot):
            self._show(stores_text(snapshot, app.now, rows=app.size.height, paused=app.paused,
                                   held=app.held is not None,
                                   healths=getattr(app, "healths", ()),
                                   style=self.status_style))
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("stepflow-top ", "bold")
        if app.paused:
            text.append(" ⏸ PAUSED ", "reverse bold yellow")
            if app.held is not None:
                text.append(" newer data waiting (p)", "yellow")
        elif snapshot is not None and snapshot.error:
            text.append(" ✗ NO DATA ", "reverse bold red")
        else:
            text.append(" ● LIVE ", "reverse bold green")
        if snapshot is not None and not snapshot.error:
            text.append(f"  journal={snapshot.journal_mode}")
        # The path is cut in the middle, so its file name stays in sight.
        room = self.content_size.width - text.cell_len - 2
        text.append(f"  {formatting.cut_middle(literal(app.paths.database), max(room, 12))}")
        text.append("\n")
        if snapshot is None:
            text.append("reading…", "dim")
        elif snapshot.error:
            text.append(f"✗ {literal(snapshot.error)} (retrying)", "bold red")
        else:
            text.append_text(writer_line(snapshot.writer))
            text.append("\n")
            counts = snapshot.counts
            by_status = counts.by_status(app.judgement())
            n = counts.executions
            text.append(f"{n} execution{'' if n == 1 else 's'}")
            for status in BAR_ORDER:
                n = by_status.get(status.value, 0)
                if n or status in (Status.RUNNING, Status.FAILED):
                    text.append("  ")
                    text.append(f"{status.label} {n}", self.status_style(status.value))
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
        self._show(text)

    def _show(self, text: Text) -> None:
        # The bar neither wraps nor scrolls: its height follows its line count, and
        # only a new height needs a layout, which repaints every scrollbar on the
        # screen (measured with a ticking "last commit": 3.7 KB/s with, 1.1 without).
        lines = text.plain.count("\n")
        self.update(text, layout=lines != self._lines)
        self._lines = lines


def stores_text(snapshot: MergedSnapshot, now: datetime, *, rows: int, paused: bool,
                held: bool, healths: tuple[HealthState | None, ...], style) -> Text:
    """The bar for ``snapshot`` at reader-local ``now`` on a terminal of ``rows`` rows;
    ``healths`` are the stores' latest health readings (in store order, may be short),
    ``style`` maps a status word to its style (``StatusColours.status_style``). While a
    run is open, its store's name is shown reversed: the detail and log are of it."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("stepflow-top ", "bold")
    readable = [p for p in snapshot.parts if p.snapshot is not None and not p.snapshot.error]
    if paused:
        text.append(" ⏸ PAUSED ", "reverse bold yellow")
        if held:
            text.append(" newer data waiting (p)", "yellow")
    elif not readable:
        text.append(" ✗ NO DATA ", "reverse bold red")
    else:
        text.append(" ● LIVE ", "reverse bold green")
    n, roomy = len(snapshot.parts), rows >= ROOMY_ROWS
    text.append(f"  {len(readable)} of {n} stores live  ·  " if roomy
                else f" {len(readable)}/{n} stores · ")
    totals: dict[str, int] = {}
    for part in readable:
        for word, count in part_counts(part, now).items():
            totals[word] = totals.get(word, 0) + count
    _counts(text, snapshot.counts.executions, totals, style, every=roomy)
    opened = snapshot.focus if snapshot.request.execution_id else None
    if roomy:
        width = max(len(p.label) for p in snapshot.parts)
        for i, part in enumerate(snapshot.parts):
            text.append("\n")
            _store_line(text, part, now, width, style, opened=i == opened)
    else:
        text.append("\n")
        for i, part in enumerate(snapshot.parts):
            if i:
                text.append(" · ", "dim")
            _compact(text, part, now, style, opened=i == opened)
    for part, health in zip(snapshot.parts, healths):
        for warning in health.warnings if health else ():
            text.append(f"\n⚠ {literal(part.label)}: {literal(warning.message)} (2: health)",
                        "bold yellow")
    return text


def _counts(text: Text, executions: int, by_status: dict[str, int], style, *,
            every: bool) -> None:
    """``N executions`` and the count of each status present (``every``: running and
    failed even when 0, as the bar of one store shows them)."""
    text.append(f"{executions} execution{'' if executions == 1 else 's'}")
    for status in BAR_ORDER:
        n = by_status.get(status.value, 0)
        if n or (every and status in (Status.RUNNING, Status.FAILED)):
            text.append("  ")
            text.append(f"{status.label} {n}", style(status.value))


def _store_line(text: Text, part: StorePart, now: datetime, width: int, style, *,
                opened: bool) -> None:
    text.append(f"{literal(part.label):<{width}}", "bold reverse" if opened else "bold")
    text.append("  ")
    snapshot = part.snapshot
    if snapshot is None:
        text.append("reading…", "dim")
        return
    if snapshot.error:
        text.append("✗ NO DATA ", "bold red")
        text.append(f"{literal(snapshot.error)} (retrying)", "red")
        return
    text.append("● LIVE  ", "bold green")
    _counts(text, snapshot.counts.executions, part_counts(part, now), style, every=False)
    if snapshot.journal_mode != "wal":
        text.append(f"  ⚠ journal={literal(snapshot.journal_mode)}", "bold yellow")
    text.append("  · ")
    text.append_text(writer_line(snapshot.writer))


def _compact(text: Text, part: StorePart, now: datetime, style, *, opened: bool) -> None:
    text.append(literal(part.label), "bold reverse" if opened else "bold")
    snapshot = part.snapshot
    if snapshot is None:
        text.append(" …", "dim")
        return
    if snapshot.error:
        text.append(" ✗ no data", "bold red")
        return
    attached = snapshot.writer.attached
    if attached is False:
        text.append(" ◌ no service", "bold magenta")
    else:
        text.append(" ●", "bold green" if attached else "dim")
    counts = part_counts(part, now)
    for status, mark in ((Status.RUNNING, ""), (Status.STALLED, "stalled "),
                         (Status.LOST, "lost "), (Status.FAILED, "✗ ")):
        n = counts.get(status.value, 0)
        if n:
            text.append(f" {mark}{n}{' running' if status is Status.RUNNING else ''}",
                        style(status.value))
