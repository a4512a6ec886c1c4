"""The help screen: every key active on the screen it was opened from, read from
that screen's active bindings (the focused widget's, the screen's and the app's)."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen

from ...store.models import Status
from ..widgets import BAR_ORDER, TextPanel

READ_ONLY_NOTE = (
    "stepflow-top is read-only by construction: it opens the database with mode=ro and "
    "query_only, never checkpoints, never holds a read snapshot between refreshes, and "
    "has no destructive action. It cannot change or block your StepFlow service."
)
STATUS_MEANINGS = {
    Status.RUNNING: "the service is working on it",
    Status.STALLED: "running, but nothing was saved for a while",
    Status.LOST: "stored as running, but no service has the database open, or the "
                 "service restarted since",
    Status.FAILED: "ended with an error",
    Status.COMPLETED: "ended well",
    Status.CANCELLED: "stopped by someone",
    Status.UNKNOWN: "a stored status stepflow-top does not know",
}
KEY_NAMES = {  # Textual's key names, as the keys are printed on a keyboard
    "question_mark": "?", "slash": "/", "plus": "+", "minus": "-", "escape": "Esc",
    "enter": "Enter", "pageup": "PgUp", "pagedown": "PgDn", "up": "Up", "down": "Down",
    "left": "Left", "right": "Right", "home": "Home", "end": "End", "tab": "Tab",
    "space": "Space", "right_square_bracket": "]",
}
SECTIONS = ("Where the cursor is", "This screen", "Everywhere")
KEY_WIDTH = 22  # terminal cells for the keys column


def key_name(key: str) -> str:
    """``"ctrl+pageup"`` → ``"ctrl+PgUp"``, ``"question_mark"`` → ``"?"``, ``"f1"`` →
    ``"F1"``: a Textual key name as a person reads it, with no arrow glyphs."""
    *modifiers, name = key.split("+")
    name = KEY_NAMES.get(name, name.upper() if name[:1] == "f" and name[1:].isdigit() else name)
    return "+".join([*modifiers, name])


def active_keys(screen: Screen) -> list[tuple[str, list[tuple[str, str]]]]:
    """The keys that work on ``screen`` now, as sections of (keys, description):
    the focused widget and its containers, the screen, and the app. Keys bound to one
    action are joined (``"Down / j"``); bindings without a description are left out."""
    grouped: dict[str, dict[tuple[int, str], tuple[list[str], str]]] = {s: {} for s in SECTIONS}
    for key, active in screen.active_bindings.items():
        binding: Binding = active.binding
        if not binding.description:
            continue
        node = active.node
        section = (SECTIONS[2] if isinstance(node, App) else
                   SECTIONS[1] if node is screen else SECTIONS[0])
        keys, _ = grouped[section].setdefault((id(node), binding.action),
                                              ([], binding.description))
        keys.append(key_name(key))
    return [(section, [(" / ".join(keys), description)
                       for keys, description in grouped[section].values()])
            for section in SECTIONS if grouped[section]]


class HelpScreen(ModalScreen):
    """Lists the keys active on ``screen``, the status words, and the read-only promise.
    Toasts are hidden while it is open (app.tcss), so none covers it."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.for_screen = screen

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield TextPanel()

    def on_mount(self) -> None:
        panel = self.query_one(TextPanel)
        panel.update(self._text(panel))

    def _text(self, panel: TextPanel) -> Text:
        text = Text()
        for section, rows in active_keys(self.for_screen):
            text.append(f"{section}\n", "bold")
            for keys, description in rows:
                text.append(f"  {keys:<{KEY_WIDTH}}", "bold cyan")
                text.append(f"{description}\n")
            text.append("\n")
        text.append("Status words\n", "bold")
        for status in BAR_ORDER:
            text.append(f"  {status.label:<{KEY_WIDTH}}", panel.status_style(status.value))
            text.append(f"{STATUS_MEANINGS[status]}\n")
        text.append("  *", "bold")
        text.append(" after a word: the status shown differs from the stored one (the "
                    "detail screen says how it was inferred)\n\n")
        text.append(READ_ONLY_NOTE, "italic")
        return text
