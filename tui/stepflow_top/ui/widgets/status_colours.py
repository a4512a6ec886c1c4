"""Colours of status words, from ``status--WORD`` component classes in app.tcss."""

from __future__ import annotations

from rich.style import Style

STATUS_WORDS = ("running", "stalled", "lost", "completed", "failed", "cancelled", "pending",
                "unknown")  # execution and step statuses (store/models.py Status, StepView)
STATUS_CLASSES = {f"status--{word}" for word in STATUS_WORDS}


class StatusColours:
    """Mixin for a widget that draws status words and lists ``STATUS_CLASSES`` in its
    own ``COMPONENT_CLASSES`` (Textual collects those from widget classes only, not
    from a mixin). Colour only helps: the words carry a symbol (UX.md #8)."""

    def status_style(self, word: str) -> Style:
        """The style of a status word (``"running"``…) from its ``status--WORD``
        component class; no style for a word stepflow-top does not know."""
        if word not in STATUS_WORDS:
            return Style()
        return self.get_component_rich_style(f"status--{word}", partial=True)
