"""A Static that repaints only on change, and literal-text table cells."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static

from ...store.text import literal
from .status_colours import STATUS_CLASSES, StatusColours


def cell(value: object, style: str | Style = "", width: int | None = None) -> Text:
    """A table cell that shows ``value`` literally (no markup, control characters
    spelled out), cut to ``width`` terminal cells with an ellipsis when given."""
    text = Text(literal(value), style=style, no_wrap=True, end="")
    if width is not None:
        text.truncate(width, overflow="ellipsis")
    return text


class TextPanel(StatusColours, Static):
    """A Static that skips ``update`` when the content is unchanged: an update
    re-lays out the screen, and views that tick every second would do it each time.
    Status words take their colours from ``status_style``."""

    _shown: object = None
    COMPONENT_CLASSES = STATUS_CLASSES

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if content == self._shown:
            return
        self._shown = content
        super().update(content, layout=layout)
