"""A DataTable that diff-updates, a text panel that repaints only on change, and
literal-text cells."""

from __future__ import annotations

from typing import Iterable, Sequence

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.message import Message
from textual.visual import VisualType
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist, RowKey

from ..store.text import literal


def cell(value: object, style: str = "", width: int | None = None) -> Text:
    """A table cell that shows ``value`` literally (no markup, control characters
    spelled out), cut to ``width`` terminal cells with an ellipsis when given."""
    text = Text(literal(value), style=style, no_wrap=True, end="")
    if width is not None:
        text.truncate(width, overflow="ellipsis")
    return text


class KeyedTable(DataTable):
    """A DataTable updated by diffing rows keyed by id (as Dolphie does).

    ``show_rows`` removes rows whose key is gone, updates only the cells that
    changed, adds new rows and puts them in the given order, all inside one
    ``batch_update`` and with the cursor kept on the same key, so rows never jump
    under the reader's cursor.

    Two things DataTable has no public way to do are done through its internals
    (``_data``, ``_update_count``, ``_row_locations``; Textual is pinned to 8.2.x
    for this): putting rows in a known order, and repainting one row after a cell
    change instead of the whole table.
    """

    DEFAULT_CSS = "KeyedTable { height: 1fr; }"

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._columns = columns

    class NearEnd(Message):
        """The reader moved the cursor to one of the last three rows (a key or a click;
        never a refresh moving the cursor with its row), so more rows may be wanted."""

    def _reader_moved(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 3:
            self.post_message(self.NearEnd())

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._reader_moved()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._reader_moved()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._reader_moved()

    def action_scroll_end(self) -> None:
        super().action_scroll_end()
        self._reader_moved()

    def on_click(self) -> None:  # after DataTable's own handler moved the cursor
        self._reader_moved()

    def on_mount(self) -> None:
        for key, label in self._columns:
            self.add_column(label, key=key)

    @property
    def cursor_key(self) -> str | None:
        """Key of the row under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:  # cursor outside the rows while the table changes
            return None

    def show_rows(
        self, rows: Iterable[tuple[str, Sequence[Text]]], *, follow: str | None = None
    ) -> None:
        """Make the table hold exactly ``rows`` ((key, cells) in display order), with
        the cursor on its row's key, or on ``follow`` when given. A key seen twice (rows
        with NULL or equal ids: one bad row must not hide the others) gets a suffix."""
        rows = _unique_keys(rows)
        wanted = {key for key, _ in rows}
        selected = self.cursor_key
        with self.app.batch_update():
            for row_key in [k for k in self.rows if k.value not in wanted]:
                self.remove_row(row_key)
            for key, cells in rows:
                if key in self.rows:
                    self._update(key, cells)
                else:
                    self.add_row(*cells, key=key)
            self._order([key for key, _ in rows])
            target = follow or selected
            if target is not None and target in wanted:
                row = self.get_row_index(target)
                if row != self.cursor_row:
                    self.move_cursor(row=row, animate=False)

    def update_rows(self, rows: Iterable[tuple[str, Sequence[Text]]]) -> None:
        """Update the cells of rows already shown (unknown keys are ignored); the
        order and the set of rows stay as they are."""
        with self.app.batch_update():
            for key, cells in rows:
                if key in self.rows:
                    self._update(key, cells)

    def _update(self, key: str, cells: Sequence[Text]) -> None:
        changed = False
        for column, before, after in zip(self.columns.values(), self.get_row(key), cells,
                                         strict=True):
            if before == after:
                continue
            if after.cell_len > column.content_width:
                # The column must grow: the public path re-measures and repaints all.
                self.update_cell(key, column.key, after, update_width=True)
            else:
                # What DataTable.update_cell does, less its repaint of the whole
                # table: a ticking elapsed time would re-send every visible row
                # to the terminal each second (measured: 8.9 KB/s, ~4 % CPU).
                self._data[RowKey(key)][column.key] = after
                self._update_count += 1
                changed = True
        if changed:
            self.refresh_row(self.get_row_index(key))

    def _order(self, keys: list[str]) -> None:
        # DataTable.sort() only hands cell values to its key function; this does
        # what sort() does, with an order we already know.
        current = [self._row_locations.get_key(i) for i in range(self.row_count)]
        if [k.value for k in current] == keys:
            return
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(keys)})
        self._update_count += 1
        self.refresh()


def _unique_keys(rows: Iterable[tuple[str, Sequence[Text]]]) -> list[tuple[str, Sequence[Text]]]:
    seen: dict[str, int] = {}
    unique = []
    for key, cells in rows:
        n = seen.get(key, 0)
        seen[key] = n + 1
        unique.append((key if n == 0 else f"{key}\x00{n}", cells))
    return unique


class TextPanel(Static):
    """A Static that skips ``update`` when the content is unchanged: an update
    re-lays out the screen, and views that tick every second would do it each time."""

    _shown: object = None

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if content == self._shown:
            return
        self._shown = content
        super().update(content, layout=layout)
