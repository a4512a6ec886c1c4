"""Whether a screen can be seen: widgets and screens under another screen skip their
work and catch up when shown again."""

from __future__ import annotations

from textual.screen import Screen


def in_sight(screen: Screen) -> bool:
    """Whether ``screen`` can be seen: it is on the screen stack and every screen above it
    lets it show through (a background that is not opaque, as a modal's). Textual's
    ``Screen.is_current`` also counts the screen right under an opaque one."""
    stack = screen.app.screen_stack
    if screen not in stack:
        return False
    return all(above.styles.background.a < 1 for above in stack[stack.index(screen) + 1:])
