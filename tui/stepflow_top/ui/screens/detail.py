"""Screen 2: one execution — summary, steps (live), artifacts, environment/metadata."""

from __future__ import annotations

import json
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from ... import formatting
from ...store.models import ExecutionDetail, Judgement, StepView
from ...store.text import literal
from ..messages import OpenLog, WatchFolder
from ..progress import progress_cell, timing
from ..widgets import KeyedTable, StoreBar, TextPanel, cell

STEP_COLUMNS = (("index", "#"), ("name", "Step"), ("status", "Status"),
                ("progress", "Progress"), ("started", "Started"), ("duration", "Duration"),
                ("exit", "Exit"), ("error", "Error"))
ARTIFACT_COLUMNS = (("name", "Artifact"), ("type", "Type"), ("size", "Size"),
                    ("exists", "On disk"), ("path", "Path"))


class DetailScreen(Screen):
    """Drill-down into one execution; Enter on a step opens its log."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("enter", "open_log", "Log"),
        Binding("e", "next_failed", "Failed"),
        Binding("E", "previous_failed", "Prev failed", show=False),
        Binding("s", "tab('steps')", "Steps", show=False),
        Binding("a", "tab('artifacts')", "Artifacts"),
        Binding("i", "tab('info')", "Env"),
        Binding("y", "copy_id", "Copy id", show=False),
    ]

    def __init__(self, execution_id: str) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.detail: ExecutionDetail | None = None
        self.views: tuple[StepView, ...] = ()  # effective step statuses, by index
        self._landed = False

    def compose(self) -> ComposeResult:
        yield StoreBar()
        yield TextPanel(id="summary")
        with TabbedContent(initial="steps"):
            with TabPane("Steps", id="steps"):
                yield KeyedTable(STEP_COLUMNS, id="steps-table")
            with TabPane("Artifacts", id="artifacts"):
                yield KeyedTable(ARTIFACT_COLUMNS, id="artifacts-table")
                yield TextPanel(id="artifact-details")
            with TabPane("Env/metadata", id="info"):
                with VerticalScroll():
                    yield TextPanel(id="info-text")
        yield Footer()

    AUTO_FOCUS = "#steps-table"

    def on_mount(self) -> None:
        self.app.set_request(execution_id=self.execution_id)
        # TabbedContent mounts its panes after this screen's on_mount.
        self.call_after_refresh(self._watch_app)

    def _watch_app(self) -> None:
        self.watch(self.app, "snapshot", self._show)
        self.watch(self.app, "now", self._tick)

    def _tick(self, _now=None) -> None:
        """Time passed: the summary and the running steps' durations move; the other
        rows (an execution may have 10 000) are left alone."""
        snapshot = self.app.snapshot
        if self.detail is None or snapshot is None or snapshot.detail is not self.detail:
            self._show()
            return
        judgement = self.app.judgement()
        self.query_one("#summary", TextPanel).update(self._summary(self.detail, judgement))
        self.steps_table.update_rows(
            (v.step.id, self._step_cells(v, judgement.now)) for v in self.views
            if v.status == "running")

    def on_screen_resume(self) -> None:
        self.app.set_request(execution_id=self.execution_id)
        self.post_message(WatchFolder(None))

    @property
    def steps_table(self) -> KeyedTable:
        return self.query_one("#steps-table", KeyedTable)

    def _show(self, _value=None) -> None:
        snapshot = self.app.snapshot
        if snapshot is None or snapshot.request.execution_id != self.execution_id:
            return
        judgement = self.app.judgement()
        summary = self.query_one("#summary", TextPanel)
        if snapshot.detail is None:
            if not snapshot.error:
                summary.update(Text("This execution is no longer in the store "
                                    "(housekeeping deletes old runs). Esc goes back.", "bold"))
            return
        self.detail = detail = snapshot.detail
        summary.update(self._summary(detail, judgement))
        self.views = detail.step_views(judgement)
        self.steps_table.show_rows(
            (v.step.id, self._step_cells(v, judgement.now)) for v in self.views)
        self.query_one("#artifacts-table", KeyedTable).show_rows(
            (a.id, [
                cell(a.name),
                cell(a.artifact_type or "—"),
                cell(formatting.size(a.file_size) if a.file_size else "0 B"),
                cell("yes" if a.exists else "missing", "" if a.exists else "yellow"),
                cell(formatting.cut_middle(a.file_path, 60)),
            ])
            for a in detail.artifacts
        )
        self._show_artifact(self.query_one("#artifacts-table", KeyedTable).cursor_key)
        self.query_one("#info-text", TextPanel).update(_info(detail))
        if not self._landed and detail.steps:
            self._landed = True
            failed = detail.first_failed_step(judgement)
            if failed is not None:
                self.steps_table.move_cursor(row=self.steps_table.get_row_index(failed.id))

    def _summary(self, detail: ExecutionDetail, judgement: Judgement) -> Text:
        e = detail.execution
        now = judgement.now
        status = e.effective_status(judgement)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(literal(e.name), "bold")
        text.append("  ")
        text.append(status.label, self.query_one("#summary", TextPanel).status_style(
            status.value))
        if status.value != e.stored_status:
            text.append(f" (stored: {literal(e.stored_status)}; "
                        f"{e.inferred_from(judgement) or 'inferred'})", "dim")
        done, known = e.progress
        text.append(f"  steps {formatting.progress(done, known)}")
        text.append(f"  started {formatting.clock_time(e.start, now)}")
        text.append(f"  {formatting.duration(e.duration(judgement))}")
        if e.exit_code is not None:
            text.append(f"  exit {e.exit_code}", "bold red" if e.exit_code else "")
        text.append(f"\n$ {literal(e.command)}")
        text.append(f"\ncwd {literal(e.working_directory) or '—'}  user {literal(e.user_name) or '—'}"
                    f"  tags {literal(e.tags) or '—'}  id {literal(e.id)}")
        if e.error_message:
            text.append(f"\nerror: {literal(e.error_message)}", "bold red")
        return text

    def _step_cells(self, view: StepView, now: datetime) -> list[Text]:
        step = view.step
        return [
            cell(step.index),
            cell(step.name, width=28),
            cell(view.label + ("*" if view.inferred else ""),
                 self.steps_table.status_style(view.status)),
            progress_cell(step.meta, view.status),
            cell(formatting.clock_time(step.started_at, now)),
            timing(view, now),
            cell("" if step.exit_code is None else step.exit_code,
                 "bold red" if step.exit_code not in (None, 0) else ""),
            cell(step.error_message, "red", width=60),
        ]

    # -- actions -----------------------------------------------------------
    def action_back(self) -> None:
        self.app.set_request(execution_id=None)
        self.app.pop_screen()

    def action_open_log(self) -> None:
        key = self.steps_table.cursor_key
        if self.detail is None or key is None:
            return
        step = next((s for s in self.detail.steps if s.id == key), None)
        if step is not None:
            self.post_message(OpenLog(self.detail.execution, step,
                                      self.detail.log_paths[step.id]))

    def on_data_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.data_table.id == "steps-table":
            self.action_open_log()
        elif event.data_table.id == "artifacts-table":
            self._show_artifact(event.row_key.value)

    def on_data_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        if event.data_table.id == "artifacts-table":
            self._show_artifact(event.row_key.value)

    def _show_artifact(self, artifact_id: str | None) -> None:
        """The artifact's whole path under the table (the Path column is cut), and
        whether the file is there now."""
        artifacts = self.detail.artifacts if self.detail else ()
        artifact = next((a for a in artifacts if a.id == artifact_id), None)
        panel = self.query_one("#artifact-details", TextPanel)
        if artifact is None:
            panel.update(cell("no artifacts" if not artifacts else "", "dim"))
            return
        text = Text()
        text.append(f"{literal(artifact.name)}: ", "bold")
        text.append(literal(artifact.file_path) or "(no path stored)")
        if artifact.exists:
            text.append("\n✓ the file exists", "green")
        else:
            text.append("\n✗ no file at this path now", "bold yellow")
        if artifact.stored_path is not None:
            text.append(f"\nstored as {literal(artifact.stored_path)}, relative to the "
                        "execution's working directory", "dim")
        panel.update(text)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        table_id = {"steps": "#steps-table", "artifacts": "#artifacts-table"}.get(tab)
        if table_id:
            self.query_one(table_id).focus()

    def action_next_failed(self) -> None:
        self._jump_failed(+1)

    def action_previous_failed(self) -> None:
        self._jump_failed(-1)

    def _jump_failed(self, direction: int) -> None:
        if self.detail is None:
            return
        rows = [i for i, v in enumerate(self.views) if v.status == "failed"]
        if not rows:
            self.notify("no failed step", timeout=2)
            return
        here = self.steps_table.cursor_row
        ahead = [r for r in rows if (r > here if direction > 0 else r < here)]
        target = (ahead[0] if direction > 0 else ahead[-1]) if ahead else rows[0 if direction > 0 else -1]
        self.action_tab("steps")
        self.steps_table.move_cursor(row=target)

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.execution_id)
        self.notify(f"copied {literal(self.execution_id)}", timeout=2, markup=False)


def _info(detail: ExecutionDetail) -> Text:
    e = detail.execution
    text = Text()
    for title, raw in (("Environment", e.environment), ("Metadata", e.metadata), ("Tags", e.tags)):
        text.append(f"{title}\n", "bold underline")
        for line in _json_lines(raw):
            text.append(literal(line) + "\n")
        text.append("\n")
    text.append("Timestamps\n", "bold underline")
    for label, value in (("created", e.created_at_text), ("started", e.started_at_text),
                         ("completed", e.completed_at_text)):
        text.append(f"  {label:<10} {literal(value) or '—'}\n")
    return text


def _json_lines(raw: str | None) -> list[str]:
    """Pretty JSON as lines; text that is not JSON is shown raw with a note."""
    if raw is None or raw == "":
        return ["  —"]
    try:
        value = json.loads(raw)
        if isinstance(value, dict):
            if not value:
                return ["  (empty)"]
            return [f"  {k} = {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(value.items())]
        return ["  " + json.dumps(value, ensure_ascii=False)]
    except (ValueError, TypeError):
        return ["  (not valid JSON, shown as stored)", "  " + raw]
    except RecursionError:  # JSON nested deeper than Python's recursion limit
        return ["  (JSON nested too deep to lay out, shown as stored)", "  " + raw[:10_000]]

