"""The help screen: every binding of the screen it was opened from."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

READ_ONLY_NOTE = (
    "stepflow-top is read-only by construction: it opens the database with mode=ro and "
    "query_only, never checkpoints, never holds a read snapshot between refreshes, and "
    "has no destructive action. It cannot change or block your StepFlow service."
)


class HelpScreen(ModalScreen):
    """Lists the keys of ``screen`` (and the app's), plus the read-only promise."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.for_screen = screen

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self._text())

    def _text(self) -> Text:
        text = Text()
        text.append("Keys\n\n", "bold")
        seen = set()
        for node in (self.for_screen, self.app):
            for binding in node.BINDINGS:
                if not isinstance(binding, Binding) or binding.description in seen:
                    continue
                seen.add(binding.description)
                keys = binding.key_display or binding.key.replace(",", " / ")
                text.append(f"  {keys:<22}", "bold cyan")
                text.append(f"{binding.description}\n")
        text.append("  ctrl+p                command palette\n", "")
        text.append("\n")
        text.append(READ_ONLY_NOTE, "italic")
        text.append("\n\nStatus words: ● running  ⏸ stalled  ◌ lost (no service has the "
                    "database open, or the service restarted since)  ✓ completed  ✗ failed  "
                    "⊘ cancelled; * marks an effective status that differs from the stored one "
                    "(the detail screen says how it was inferred).")
        return text
