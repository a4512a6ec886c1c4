"""Widgets shared by the screens: the keyed table, the text panel and the store bar."""

from .keyed_table import KeyedTable
from .store_bar import BAR_ORDER, StoreBar, writer_line
from .text_panel import TextPanel, cell

__all__ = ["BAR_ORDER", "KeyedTable", "StoreBar", "TextPanel", "cell",
           "writer_line"]
