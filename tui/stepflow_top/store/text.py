"""Making text from the store safe to show literally (DESIGN.md promise 7).

Names, messages and log lines can hold any bytes a script printed: ANSI escape
sequences, carriage returns, invalid UTF-8, text that looks like Rich markup.
Markup is neutralised by never parsing it (views wrap strings in ``rich.text.Text``);
control characters are neutralised here by spelling them out.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _spell(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(value: object, *, tab_size: int = 4) -> str:
    """``value`` as one line of plain text with every control character spelled out.

    ESC becomes the four characters ``\\x1b``, a newline ``\\x0a``; tabs expand to
    spaces. ``None`` gives ``""``. Bidirectional overrides are spelled out too, so a
    line cannot reorder what follows it.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(_spell, text.expandtabs(tab_size))


def decode(data: bytes) -> str:
    """Bytes from a log file as text; invalid UTF-8 shows as ``\\xNN``."""
    return data.decode("utf-8", "backslashreplace")
