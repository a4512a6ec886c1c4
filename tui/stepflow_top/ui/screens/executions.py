"""Screen 1: the executions list."""

from __future__ import annotations

from functools import cached_property

import humanize
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from ... import formatting
from ...live.refresher import ViewRequest
from ...live.settings import SORTS
from ...live.stores import MergedSnapshot, Row, split_key
from ...store import filters
from ...store.models import FINAL_EXECUTION, Execution, Judgement, Status
from ...store.order import SORT_SCOPE
from ...store.stepmeta import parse_step_meta
from ...store.text import literal
from ..list_columns import (
    COLUMNS,
    LABELS,
    PROGRESS_ROOM,
    WIDE_COLUMNS,
    Fit,
    column_needs,
    error_cell,
    fit_columns,
    shows_progress,
    tags_text,
)
from ..messages import OpenExecution
from ..progress import step_suffix
from ..widgets import KeyedTable, StoreBar, TextPanel, cell
from ..widgets.sight import in_sight

STATUS_CYCLE = (None, Status.RUNNING, Status.STALLED, Status.LOST, Status.FAILED,
                Status.COMPLETED, Status.CANCELLED)
STORE_COLUMN = ("store", "Store")  # shown only when several stores are watched
STEP_LABEL = len("Current step")  # a narrower current-step column is headed "Step"

PAGE = 50


class ExecutionsScreen(Screen):
    """Newest executions first, live; Enter drills into one."""

    BINDINGS = [
        Binding("enter", "open", "Open", priority=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "cycle_status", "Status"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("O", "reverse_sort", "Reverse", show=False),
        Binding("T", "toggle_relative", "Relative times", show=False),
        Binding("F", "toggle_follow", "Follow"),
        Binding("y", "copy_id", "Copy id", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort = "started"
        self.reverse = False
        self.relative = False  # T: "3 minutes ago" instead of clock times
        self.filter_error: str | None = None
        self.follow = True  # the newest run under the cursor until the reader moves
        self.fit = Fit(name=28, step=24)
        self._unfitted = False  # columns not yet narrowed to the fit
        self._new_view: ViewRequest | None = None  # asked for, its rows not shown yet
        self._stale = False  # a snapshot arrived while another screen was on top
        self._made: dict[str, tuple[tuple, list[Text]]] = {}  # see _row_cells

    def on_resize(self) -> None:
        # Recomputed on every resize: the step gives way first and the name last, so a
        # narrow window never pushes Exit off screen; a wide one opens error and tags
        # (_show fits the columns to the width and the rows before it shows them).
        self._show()

    def _fit(self, rows: list[Row]) -> None:
        """Fit the columns to the width and to ``rows`` (a wide window gives what short
        names and step names leave over to the error message)."""
        needs = column_needs([r.execution for r in rows], frozenset(
            r.execution.id for r in rows
            if shows_progress(r.execution.effective_status(r.judgement))))
        # Several stores in a narrow window: the Store column takes the User column's
        # room, so that the name, the step and Exit still fit.
        fit = fit_columns(self.size.width, needs, store=self._store_width)
        if fit == self.fit:
            return
        relabel = fit.user != self.fit.user or (fit.step < STEP_LABEL) != (
            self.fit.step < STEP_LABEL)
        self.fit = fit
        self._show_wide_columns()
        if relabel:
            self._mark_sorted_column()
        self._unfitted = True  # narrowed once the rows are shown in the new widths

    def _show_wide_columns(self) -> None:
        """Add or remove the error and tags columns to match ``self.fit`` (they always
        come after Exit, in WIDE_COLUMNS order)."""
        table = self.table
        wanted = self.fit.wide
        for key, _label in reversed(WIDE_COLUMNS):
            if key in table.columns and key not in wanted:
                table.remove_column(key)
        for key in wanted:
            if key not in table.columns:
                table.add_column(LABELS[key], key=key, default=Text(""))

    def _narrow_shared_columns(self) -> bool:
        """A narrower fit must narrow its columns too: DataTable widens a column when a
        cell grows but never narrows it by itself. Setting one cell again with
        ``update_width`` makes it measure the whole column when that cell is narrower
        than the column (as every cell is once cut shorter). False when there is no row yet."""
        table = self.table
        first = next(iter(table.rows), None)
        if first is None:
            return False
        for key in ("name", "current", *self.fit.wide, *(() if self.fit.user else ("user",))):
            table.update_cell(first, key, table.get_cell(first, key), update_width=True)
        return True

    def compose(self) -> ComposeResult:
        yield StoreBar(id="bar")
        yield Input(placeholder="name, id, command or tag text; user: tag: status: since:1h "
                    "— Enter keeps, Esc clears",
                    id="filter", classes="hidden")
        yield TextPanel(id="view-state")
        yield KeyedTable(((STORE_COLUMN,) if self._store_width else ()) + COLUMNS,
                         id="executions")
        yield TextPanel(id="empty", classes="hidden")
        yield Footer()

    def on_mount(self) -> None:
        if self.app.settings.sort in SORTS:
            self.sort = self.app.settings.sort
            self.reverse = self.app.settings.sort_reverse
        self._mark_sorted_column()
        self.app.set_request(sort=self.sort, reverse=self.reverse)
        self.watch(self.app, "snapshot", self._show)
        self.watch(self.app, "now", self._tick)
        self._show_view_state()
        self.query_one(KeyedTable).focus()

    @cached_property
    def table(self) -> KeyedTable:
        # Kept: _cells asks for it once per row, and a query per row was 5 % of the
        # CPU under a stream of commits (py-spy).
        return self.query_one(KeyedTable)

    # -- showing -----------------------------------------------------------
    def on_screen_resume(self) -> None:
        if self._stale:
            self._show()

    def _show(self, _value=None) -> None:
        # A screen under another one does no work (the detail screen refreshes as
        # often as the list would): it catches up when it is shown again.
        self._stale = not in_sight(self)
        snapshot = self.app.snapshot
        if snapshot is None or self._stale:
            return
        judgement = self.app.judgement()
        executions = snapshot.executions  # in the requested order: sorted in the database
        rows = self._rows(snapshot, judgement)
        self._fit(rows)  # before the rows are made: each is made once, in its widths
        newest = rows[0].key if self.follow and rows else None
        # The first rows of a new filter, status filter or sort: the view starts at the
        # top, unless the selected run is still in the result (it stays on it).
        new_view = self._new_view is not None and snapshot.request == self._new_view
        kept = self.table.cursor_key in {r.key for r in rows}
        made, self._made = self._made, {}
        self.table.show_rows(((r.key, self._row_cells(r, made)) for r in rows), follow=newest)
        if self._unfitted:
            self._unfitted = not self._narrow_shared_columns()
        if new_view:
            self._new_view = None
            if not kept and self.table.row_count:
                self.table.move_cursor(row=0, animate=False)
                self.table.scroll_home(animate=False)
        empty = self.query_one("#empty", TextPanel)
        if snapshot.error:
            empty.update(Text(f"Waiting: {snapshot.error}.\nThe screen fills in by itself "
                              "once the database can be read.", style="bold"))
        elif not executions:
            request = self.app.request
            filtered = request.text or request.status
            empty.update("No execution matches the filter (Esc clears it)." if filtered
                         else "No executions yet: this fills in as soon as the service starts one.")
        empty.set_class(bool(executions) and not snapshot.error, "hidden")
        self._show_view_state()

    def _tick(self, _now=None) -> None:
        """Time passed: only executions that are not final show times that move."""
        snapshot = self.app.snapshot
        if snapshot is None or self.relative or not in_sight(self):
            self._show()  # relative times move on every row; a hidden list waits
            return
        judgement = self.app.judgement()
        self.table.update_rows(
            (r.key, self._row_cells(r, self._made))
            for r in self._rows(snapshot, judgement)
            if r.execution.stored_status not in FINAL_EXECUTION
        )

    def _rows(self, snapshot, judgement: Judgement) -> list[Row]:
        """The rows to show: one store's keyed by id and judged by ``judgement``;
        several stores' keyed by store and id, each judged by its store
        (``live.stores``)."""
        if isinstance(snapshot, MergedSnapshot):
            return list(snapshot.rows(self.app.now))
        return [Row(e.id, "", e, judgement) for e in snapshot.executions]

    @cached_property
    def _store_width(self) -> int:
        """Cells the Store column takes (0: one store, no column); the stores are
        fixed at start."""
        labels = self.app.store_labels
        return min(12, max(map(len, labels))) + 2 if len(labels) > 1 else 0

    def _row_cells(self, row: Row, before: dict[str, tuple[tuple, list[Text]]]) -> list[Text]:
        """``_cells`` of ``row``: the ones made for it before (``before``: the last
        pass's, or this pass's own) while nothing they are made from changed. Under a
        stream of commits most rows are the same from one frame to the next, and making
        their cells again was half the cost of showing a snapshot (py-spy). A key seen
        twice in one pass (rows with equal ids) gets cells of its own, as KeyedTable
        wants."""
        if before is not self._made and row.key in self._made:
            return self._cells(row.execution, row.judgement, row.store)
        # A final run's cells move with the date only (its clock time), unless times
        # are relative; a live run's with everything it is judged by.
        e = row.execution
        judged = row.judgement if self.relative or e.ticking else row.judgement.now.date()
        made_from = (e, judged, row.store, self.fit, self.relative, self.app.theme)
        kept = before.get(row.key)
        if kept is not None and kept[0] == made_from:
            cells = kept[1]
        else:
            cells = self._cells(row.execution, row.judgement, row.store)
        self._made[row.key] = (made_from, cells)
        return cells

    def _cells(self, e: Execution, judgement: Judgement, store: str = "") -> list[Text]:
        now = judgement.now
        status = e.effective_status(judgement)
        label = status.label
        if status.value != e.stored_status:
            label += "*"
        cells = [
            *([cell(store, width=self._store_width - 2)] if self._store_width else []),
            cell(label, self.table.status_style(status.value)),
            cell(e.name, width=self.fit.name),
            cell(e.user_name if self.fit.user else "", width=self.fit.user),
            cell(self._time(e, now)),
            cell(formatting.duration(e.duration(judgement))),
            cell(formatting.progress(*e.progress)),
            self._current_step(e, status),
            cell("" if e.exit_code is None else e.exit_code,
                 "bold red" if e.exit_code not in (None, 0) else ""),
        ]
        if self.fit.error:
            cells.append(error_cell(e, status, self.fit.error))
        if self.fit.tags:
            cells.append(cell(tags_text(e.tags), "dim", width=self.fit.tags))
        return cells

    def _current_step(self, e: Execution, status: Status) -> Text:
        """The current step's name, and its progress while it may move, when the cell
        has room for both."""
        width = self.fit.step
        suffix = ""
        if width >= PROGRESS_ROOM and e.running_metadata and shows_progress(status):
            suffix = step_suffix(parse_step_meta(e.running_metadata))
        text = cell(e.current_step, width=width - len(suffix))
        text.append(suffix, "bold")
        return text

    def _time(self, e: Execution, now) -> str:
        if self.relative and e.start is not None:
            return humanize.naturaltime(now - e.start)
        return formatting.clock_time(e.start, now)

    def _mark_sorted_column(self) -> None:
        """▼/▲ on the sorted column's header (▼: the order's first sense, e.g. newest
        first; ▲ reversed). The wide columns are not sorted, so they keep their labels."""
        self.table.relabel({
            key: Text(label + (" ▲" if self.reverse else " ▼") if key == self.sort else label)
            for key, label in self._labels().items()})

    def _labels(self) -> dict[str, str]:
        """Header labels that fit the widths: ``Step`` for a narrow current-step
        column, none for a User column the Store column took the room of."""
        labels = dict(COLUMNS)
        if self.fit.step < STEP_LABEL:
            labels["current"] = "Step"
        if not self.fit.user:
            labels["user"] = ""
        return labels

    def _show_view_state(self) -> None:
        request = self.app.request
        parts = [f"sort: {self.sort}{' reversed' if self.reverse else ''}"]
        if request.status:
            parts.append(f"status: {request.status.label}")
        if request.text:
            try:
                wanted = filters.parse(request.text, self.app.judgement().now)
                parts.append(f"filter: {wanted.describe()}")
            except filters.FilterError:
                parts.append(f"filter: {request.text}")
        if self.follow:
            parts.append("following newest")
        parts.append(f"showing up to {request.limit}")
        text = cell("  ·  ".join(parts), "dim")
        snapshot = self.app.snapshot
        if self.filter_error:
            text.append(f"  ·  {self.filter_error}", "yellow")
        if (snapshot is not None and self.sort != "started"
                and (snapshot.counts.executions or 0) > SORT_SCOPE):
            text.append(f"  ·  sorted within the newest {SORT_SCOPE:,}", "yellow")
        if snapshot is not None and snapshot.searched is not None:
            text.append(f"  ·  searched the newest {snapshot.searched:,} (time limit)", "yellow")
        if snapshot is not None and snapshot.damaged_after is not None:
            text.append(f"  ·  ⚠ a damaged page stops the list after {snapshot.damaged_after} "
                        "rows: run stepflow-top --check", "bold red")
        self.query_one("#view-state", TextPanel).update(text)

    # -- paging ------------------------------------------------------------
    def on_keyed_table_reader_moved(self, _event: KeyedTable.ReaderMoved) -> None:
        # Moving the cursor stops following the newest run, as the log screen's
        # scrolling stops following its end (F follows again).
        if self.follow and self.table.cursor_row != 0:
            self.follow = False
            self._show_view_state()

    def on_keyed_table_near_end(self, _event: KeyedTable.NearEnd) -> None:
        # Only the reader's own move loads more: new runs arriving above push the
        # cursor down with its row, and that must never grow the list by itself (it
        # grew 50 → 750 rows in 10 idle minutes).
        limit = self.app.request.limit
        if self.table.row_count >= limit:
            self.app.set_request(limit=limit + PAGE)
            self._show_view_state()

    # -- actions -----------------------------------------------------------
    def on_data_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.post_message(OpenExecution(key))

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.remove_class("hidden")
        field.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # A qualifier being typed ("since:1") may not parse yet: keep the last good
        # filter and say what is wrong.
        text = event.value.strip()
        try:
            filters.parse(text, self.app.now)
        except filters.FilterError as exc:
            self.filter_error = str(exc)
        else:
            self.filter_error = None
            self._change_view(text=text)
        self._show_view_state()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.table.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        field.add_class("hidden")
        self.filter_error = None
        self._change_view(text="", status=None)
        self._show_view_state()
        self.table.focus()

    def action_cycle_status(self) -> None:
        current = STATUS_CYCLE.index(self.app.request.status)
        self._change_view(status=STATUS_CYCLE[(current + 1) % len(STATUS_CYCLE)])
        self._show_view_state()

    def action_cycle_sort(self) -> None:
        self._sort_by(SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)], reverse=False)

    def action_reverse_sort(self) -> None:
        self._sort_by(self.sort, reverse=not self.reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORTS:  # a second click on the sorted column reverses it
            self._sort_by(key, reverse=not self.reverse if key == self.sort else False)

    def _sort_by(self, sort: str, *, reverse: bool) -> None:
        """Ask the database for this order; it sticks between sessions."""
        self.sort, self.reverse = sort, reverse
        self.app.settings.sort, self.app.settings.sort_reverse = sort, reverse
        self.app.settings.save()
        self._mark_sorted_column()
        self._change_view(sort=sort, reverse=reverse)
        self._show_view_state()

    def _change_view(self, **changes) -> None:
        """Ask for another view; its first rows start at the top (see ``_show``)."""
        self.app.set_request(**changes)
        self._new_view = self.app.request

    def action_toggle_relative(self) -> None:
        self.relative = not self.relative
        self._show()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self._show_view_state()
        self._show()

    def action_copy_id(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            key = split_key(key)[1]  # the execution id, without its store
            self.app.copy_to_clipboard(key)
            self.notify(f"copied {literal(key)}", timeout=2, markup=False)

