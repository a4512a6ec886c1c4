"""KeyedTable in a small app: rows in the order given, one row repainted after a cell
change, rows moved without being drawn again, and the movement keys on the table itself."""

from __future__ import annotations

from conftest import until
from rich.text import Text
from stepflow_top.ui.widgets import KeyedTable, cell
from textual.app import App, ComposeResult

COLUMNS = (("name", "Name"), ("elapsed", "Elapsed"))


class Recording(KeyedTable):
    """Records which lines the compositor asked it to draw."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.drawn: list[int] = []

    def render_line(self, y: int):
        self.drawn.append(y)
        return super().render_line(y)


class TableApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.near_end = 0

    def compose(self) -> ComposeResult:
        yield Recording(COLUMNS)

    def on_keyed_table_near_end(self, _event: KeyedTable.NearEnd) -> None:
        self.near_end += 1


def rows(names: list[str], elapsed: str = "1s") -> list[tuple[str, list[Text]]]:
    return [(name, [cell(name), cell(elapsed)]) for name in names]


def order(table: KeyedTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


async def test_rows_follow_the_given_order_and_the_cursor_its_key():
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows(["a", "b", "c", "d"]))
        table.move_cursor(row=2)  # on "c"
        await pilot.pause()
        table.show_rows(rows(["d", "c", "e", "a"]))
        await pilot.pause()
        assert order(table) == ["d", "c", "e", "a"]
        assert table.cursor_key == "c"
        assert [str(table.get_cell(key, "name")) for key in order(table)] == ["d", "c", "e", "a"]


async def test_a_changed_cell_repaints_its_row_only():
    """Fails when a Textual release changes how DataTable.update_cell repaints (the one
    place KeyedTable depends on it): either every line is drawn again, or the changed
    row is not drawn at all."""
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows([f"run-{i}" for i in range(8)]))
        await until(pilot, lambda: table.drawn)
        await pilot.pause()
        table.drawn.clear()
        table.update_rows([("run-3", [cell("run-3"), cell("2s")])])
        await until(pilot, lambda: table.drawn)
        await pilot.pause()
        header = 1
        assert set(table.drawn) == {header + 3}
        assert "2s" in table.render_line(header + 3).text
        table.drawn.clear()  # the recorder sees every line when the whole table repaints
        table.refresh()
        await until(pilot, lambda: table.drawn)
        assert len(set(table.drawn)) > 8


async def test_a_cell_wider_than_its_column_widens_it():
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows(["a", "b"]))
        await pilot.pause()
        table.update_rows([("b", [cell("b"), cell("1h 02m 03s")])])
        await pilot.pause()
        assert table.columns[next(k for k in table.columns if k.value == "elapsed")] \
            .content_width >= len("1h 02m 03s")


async def test_movement_keys_on_the_table_and_near_end_only_from_the_reader():
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows([f"run-{i}" for i in range(6)]))
        table.focus()
        await pilot.pause()
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        assert app.near_end == 0
        await pilot.press("G")
        assert table.cursor_row == 5
        await until(pilot, lambda: app.near_end == 1)
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == 5
        await pilot.press("home")
        assert table.cursor_row == 0
        table.show_rows(rows([f"run-{i}" for i in range(7)]), follow="run-6")
        await pilot.pause()
        assert table.cursor_row == 6
        assert app.near_end == 2  # End; a refresh moving the cursor posts nothing


async def test_rows_moved_by_a_new_row_are_not_drawn_again_and_clicks_still_find_them(
        monkeypatch):
    """KeyedTable._render_cell (DataTable's private rendering method, overridden): this
    fails when a Textual release renames it or stops calling it per cell. A cell is
    drawn once per look, so alike cells of other rows are not drawn again either."""
    from textual.widgets import DataTable

    drawn: list[tuple[int, int]] = []
    original = DataTable._render_cell

    def counting(self, row_index, column_index, *args, **kwargs):
        drawn.append((row_index, column_index))
        return original(self, row_index, column_index, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_render_cell", counting)
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows(["a", "b", "c"]))
        await pilot.pause()
        assert {(r, c) for r, c in drawn if r >= 0 and c == 0} == {(0, 0), (1, 0), (2, 0)}
        # The three alike "1s" cells: drawn once under the cursor and once without it.
        assert len([r for r, c in drawn if r >= 0 and c == 1]) == 2
        drawn.clear()
        table.show_rows(rows(["new", "a", "b", "c"]))
        await pilot.pause()
        # The new row, and the cursor's row (its highlight moved with it): not "b", "c".
        assert {r for r, _c in drawn if r >= 0} <= {0, 1}
        await pilot.click(Recording, offset=(2, 3))  # the header, "new", "a", then "b"
        await pilot.pause()
        assert table.cursor_key == "b"
        await pilot.click(Recording, offset=(20, 4))  # in "c"'s second cell
        await pilot.pause()
        assert table.cursor_key == "c"


async def test_alike_cells_of_a_row_are_sent_as_one_segment_and_header_cells_apart():
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows(["a", "b"]))
        table.move_cursor(row=1)
        await pilot.pause()
        header, row = list(table.render_line(0)), list(table.render_line(1))
        assert len([s for s in header if s.text.strip()]) == 2  # Name, Elapsed: sortable
        assert len([s for s in row if s.text.strip()]) == 1  # "a" and "1s" joined
        assert {s.style.meta["row"] for s in row} == {0}  # a click still finds the row


async def test_every_cell_names_its_own_place_though_its_look_was_drawn_elsewhere():
    """Cells are kept by look and drawn once: the mouse meta of each line's cells (which
    DataTable reads on clicks and hovers) still names that line's row and the column
    the cell is in, for the header too (a click there sorts by its column)."""
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.columns["elapsed"].label = Text("Name")  # a header cell alike the first
        table.show_rows(rows(["a", "b", "c"]))
        await pilot.pause()
        table.show_rows([("x", [cell("c"), cell("1s")]), *rows(["a", "b", "c"], "2s")])
        await pilot.pause()
        widths = [c.get_render_width(table) for c in table.ordered_columns]
        for y in range(5):  # the header, then "x", "a", "b", "c"
            x = 0
            line = list(table.render_line(y))
            # DataTable's meta keys, which cell_looks relies on (Textual 8.2)
            assert any(s.style and "row" in s.style.meta for s in line)
            for segment in line:
                meta = segment.style.meta if segment.style else {}
                if "row" in meta:
                    assert meta["row"] == y - 1
                if "row" in meta and not meta.get("out_of_bounds"):  # the filler past them
                    assert meta["column"] == (0 if x < widths[0] else 1), (y, segment)
                x += segment.cell_length
        await pilot.click(Recording, offset=(widths[0] + 2, 1))  # "x"'s second cell
        await pilot.pause()
        assert table.cursor_key == "x"


async def test_a_row_line_that_only_moved_is_not_drawn_again(monkeypatch):
    from textual.widgets import DataTable

    drawn: list[int] = []
    original = DataTable.render_line

    def counting(self, y):
        drawn.append(y)
        return original(self, y)

    monkeypatch.setattr(DataTable, "render_line", counting)
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows(["a", "b", "c", "d"]))
        await pilot.pause()
        drawn.clear()
        table.show_rows(rows(["new", "a", "b", "c"]), follow="new")
        await pilot.pause()
        # The new row and "a" (the cursor left it) are drawn; "b" and "c" moved only.
        assert {1, 2} <= set(drawn) and not {3, 4} & set(drawn)
        assert [str(table.get_cell(k, "name")) for k in order(table)] == ["new", "a", "b", "c"]


async def test_a_new_header_label_is_drawn_though_no_row_changed():
    """relabel relies on a sort making DataTable draw its header anew (DataTable has
    no public way to change a label): this fails when a Textual release changes that."""
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Recording)
        table.show_rows(rows(["a", "b"]))
        await pilot.pause()
        assert "Name " in table.render_line(0).text
        table.relabel({"name": cell("Name ▼")})
        await pilot.pause()
        assert "Name ▼" in table.render_line(0).text
        assert [row.key.value for row in table.ordered_rows] == ["a", "b"]
