"""Terminal output as plain text plus colour spans, with nothing left that a terminal
would act on (DESIGN.md promise 7).

A script's output holds what it meant for a terminal: SGR colours and styles
(``ESC [ … m``), cursor moves and screen clears, OSC strings (window titles, OSC 52
clipboard writes, OSC 8 hyperlinks), DCS/APC strings, carriage-return progress
lines, bells and backspaces. ``AnsiReader`` turns one line at a time into text
that can be shown literally and the renditions (colours, bold, …) of its spans:

- SGR sequences become ``Rendition`` spans; the rendition carries over to the next
  line, as it does on a terminal.
- Every other escape sequence is dropped whole, payload included: nothing of an
  OSC 52 or OSC 8 reaches the screen or the terminal.
- A carriage return starts the line over, so ``10%\\r20%\\r100%`` reads ``100%``
  (the last state a terminal showed); a trailing ``\\r`` (CRLF) changes nothing.
- Tabs expand to the next multiple of 8 columns; other control characters and
  Unicode bidirectional overrides are spelled out (``\\x07``, ``\\u202e``), as
  ``text.literal`` does.

Sequence syntax: ECMA-48 (5th edition) sections 5.3-5.6 (CSI, OSC, DCS, SOS, PM, APC
and independent escapes); SGR parameters: ECMA-48 8.3.117 plus the xterm extensions
(``ctlseqs``: 38/48 with ``;5;n`` and ``;2;r;g;b``, their colon forms, 90-107).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# A colour: None for the terminal's default, 0-255 for the 256-colour palette
# (0-15 are the ANSI colours), or (red, green, blue) for 24-bit colour.
Colour = int | tuple[int, int, int] | None

_CSI = r"(?:\x1b\[|\x9b)(?P<params>[\x30-\x3f]*)(?P<inter>[\x20-\x2f]*)(?P<final>[\x40-\x7e]|$)"
# OSC, DCS, SOS, PM, APC: a string up to ST (ESC \ or 0x9c), or BEL for OSC, or the
# end of the line when the script never ended it.
_STRING = r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
_ESCAPE = r"\x1b[\x20-\x2f]*[\x30-\x7e]?"  # other escapes (charset selection, keypad modes, …)
_TOKEN = re.compile(
    rf"(?P<csi>{_CSI})|{_STRING}|{_ESCAPE}|(?P<tab>\t)"
    r"|(?P<control>[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069])"
)
# Every token starts with one of these; one character class scans fastest.
_STARTS_TOKEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# A segment between carriage returns that draws nothing: escape sequences only.
_DRAWS_NOTHING = re.compile(f"(?:{_CSI.replace('?P<', '?P<_')}|{_STRING}|{_ESCAPE})*")
TAB_SIZE = 8


@dataclass(frozen=True, slots=True)
class Rendition:
    """The graphic rendition a terminal would draw text with (blinking and
    concealed text are drawn plainly)."""

    fg: Colour = None
    bg: Colour = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    reverse: bool = False
    strike: bool = False


PLAIN = Rendition()
_FLAGS = {1: ("bold", True), 2: ("dim", True), 3: ("italic", True), 4: ("underline", True),
          7: ("reverse", True), 9: ("strike", True), 21: ("underline", True),
          23: ("italic", False), 24: ("underline", False), 27: ("reverse", False),
          29: ("strike", False)}


def _number(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _extended(parts: list[list[str]], at: int) -> tuple[Colour, int]:
    """The colour of a 38/48 parameter at ``parts[at]``; returns it and how many
    parameters it used. Colon form (``38:5:n``, ``38:2:cs:r:g:b``) or semicolon form."""
    head = parts[at]
    if len(head) > 1:  # colon sub-parameters, all inside this one parameter
        kind = _number(head[1])
        if kind == 5 and len(head) > 2:
            return min(_number(head[2]), 255), 1
        if kind == 2 and len(head) >= 5:
            rgb = head[-3:]
            return tuple(min(_number(v), 255) for v in rgb), 1  # type: ignore[return-value]
        return None, 1
    kind = _number(parts[at + 1][0]) if at + 1 < len(parts) else 0
    if kind == 5 and at + 2 < len(parts):
        return min(_number(parts[at + 2][0]), 255), 3
    if kind == 2 and at + 4 < len(parts):
        rgb = (parts[at + 2][0], parts[at + 3][0], parts[at + 4][0])
        return tuple(min(_number(v), 255) for v in rgb), 5  # type: ignore[return-value]
    return None, len(parts) - at  # malformed: ignore the rest, as xterm does


def apply_sgr(rendition: Rendition, params: str) -> Rendition:
    """``rendition`` after one SGR sequence whose parameter string is ``params``
    (``"1;32"``, ``""`` for a reset). Unknown parameters are ignored."""
    parts = [p.split(":") for p in params.split(";")]
    changes: dict[str, object] = {}
    i = 0
    while i < len(parts):
        code = _number(parts[i][0])
        used = 1
        if code == 0:
            rendition, changes = PLAIN, {}
        elif code == 4 and len(parts[i]) > 1:  # 4:0 no underline, 4:1..5 styles of it
            changes["underline"] = _number(parts[i][1]) != 0
        elif code in _FLAGS:
            name, value = _FLAGS[code]
            changes[name] = value
        elif code == 22:
            changes["bold"] = changes["dim"] = False
        elif 30 <= code <= 37 or 90 <= code <= 97:
            changes["fg"] = code - 30 if code < 90 else code - 82
        elif 40 <= code <= 47 or 100 <= code <= 107:
            changes["bg"] = code - 40 if code < 100 else code - 92
        elif code in (38, 48):
            colour, used = _extended(parts, i)
            changes["fg" if code == 38 else "bg"] = colour
        elif code == 39:
            changes["fg"] = None
        elif code == 49:
            changes["bg"] = None
        i += used
    return replace(rendition, **changes) if changes else rendition


Span = tuple[int, int, Rendition]


def _is_sgr(match: re.Match[str]) -> bool:
    """A CSI that ends in ``m`` with no intermediates and no private marker
    (``CSI > 4 ; 2 m`` is xterm's key-modifier setting, not a colour)."""
    return (match["final"] == "m" and not match["inter"]
            and match["params"][:1] not in ("<", "=", ">", "?"))


class AnsiReader:
    """Reads lines of terminal output in order, carrying the SGR rendition from one
    line to the next. Not thread-safe; one reader per log read."""

    def __init__(self) -> None:
        self.rendition = PLAIN
        # Whether the last line read was started over by a carriage return: what
        # it shows began at the left margin, wherever the line was cut before.
        self.restarted = False
        # (rendition, SGR parameters) -> rendition: a log repeats a few sequences.
        self._sgr: dict[tuple[Rendition, str], Rendition] = {}

    def _apply(self, params: str) -> Rendition:
        key = (self.rendition, params)
        new = self._sgr.get(key)
        if new is None:
            if len(self._sgr) > 4096:  # a script can print any number of colours
                self._sgr.clear()
            new = apply_sgr(self.rendition, params)
            self._sgr[key] = new = PLAIN if new == PLAIN else new
        return new

    def line(self, raw: str) -> tuple[str, tuple[Span, ...]]:
        """One line (no ``\\n``) as (text, spans): ``text`` holds no control
        character and no escape sequence; spans are (start, end, Rendition) over
        ``text``, in order, for every run not drawn with the plain rendition."""
        self.restarted = False
        if "\r" not in raw:
            return self._segment(raw)
        # What a terminal shows last: the last segment after a carriage return that
        # draws something; the others only change the rendition.
        segments = raw.split("\r")
        shown = next((i for i in range(len(segments) - 1, -1, -1)
                      if not _DRAWS_NOTHING.fullmatch(segments[i])), 0)
        self.restarted = shown > 0
        for segment in segments[:shown]:
            self._fold(segment)
        result = self._segment(segments[shown])
        for segment in segments[shown + 1:]:
            self._fold(segment)
        return result

    def _fold(self, segment: str) -> None:
        for match in _TOKEN.finditer(segment):
            if match["csi"] is not None and _is_sgr(match):
                self.rendition = self._apply(match["params"])

    def _segment(self, raw: str) -> tuple[str, tuple[Span, ...]]:
        if _STARTS_TOKEN.search(raw) is None:  # most lines: plain text
            keep = raw and self.rendition is not PLAIN
            return raw, ((0, len(raw), self.rendition),) if keep else ()
        chunks: list[str] = []
        spans: list[Span] = []
        length = start = position = 0  # start: where the current run began
        for match in _TOKEN.finditer(raw):
            if match.start() > position:
                piece = raw[position:match.start()]
                chunks.append(piece)
                length += len(piece)
            position = match.end()
            if match["csi"] is not None:
                if _is_sgr(match):
                    new = self._apply(match["params"])
                    if new != self.rendition:
                        if length > start and self.rendition is not PLAIN:
                            spans.append((start, length, self.rendition))
                        start, self.rendition = length, new
                continue
            if match["tab"] is not None:
                piece = " " * (TAB_SIZE - length % TAB_SIZE)
            elif match["control"] is not None:
                code = ord(match.group())
                piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
            else:
                continue
            chunks.append(piece)
            length += len(piece)
        if position < len(raw):
            chunks.append(raw[position:])
            length += len(raw) - position
        if length > start and self.rendition is not PLAIN:
            spans.append((start, length, self.rendition))
        return "".join(chunks), tuple(spans)
