"""A step log's lines as the log screen shows them: the service's timestamp apart,
the script's text with its colours (``ansi.AnsiReader``), a severity, and a bound
on how much of one line is kept.

The service prefixes every line it saves with ``[2026-11-21T19:47:31.000351] ``
(STEPFLOW_STORE.md, "How the service writes"). A line is kept up to
``MAX_LINE_CHARS`` characters, so that drawing or searching one line costs the
same however long the script made it (one 2 MB line froze the screen for seconds),
and no more than ``MAX_RAW_CHARS`` of it are parsed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Sequence

from .ansi import AnsiReader, Span

MAX_LINE_CHARS = 10_000
MAX_RAW_CHARS = 64 * 1024  # of one line, escape sequences included, read at most
_STAMP = re.compile(r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?\] ")
# Whole words only ("errors", "failover" and "warned" are not levels); STEP_ERROR
# (the service's marker) counts, hence letters, not \b, as the boundary.
# Matched in lower case: a lowered copy scans faster than re.IGNORECASE.
_LEVEL_WORD = re.compile(
    r"(?<![a-z])(?:(?P<error>error|fatal|critical|fail|failed|failure|traceback|panic)"
    r"|warn|warning|deprecated)(?![a-z])")


class Level(enum.IntEnum):
    """How alarming a line reads, from its words (as lnav tells levels)."""

    NONE = 0
    WARNING = 1
    ERROR = 2


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a step's log.

    ``stamp`` is the service's ``[timestamp] `` prefix ("" when the line has none);
    ``text`` is what the script printed, free of control characters and escape
    sequences, at most ``MAX_LINE_CHARS`` characters; ``spans`` are its colours,
    (start, end, Rendition) over ``text``. ``cut_before`` says the line began
    before what is kept (before the read window, or before its last
    ``MAX_LINE_CHARS`` characters); ``cut_after`` says its end is not kept.
    """

    stamp: str
    text: str
    spans: tuple[Span, ...] = ()
    level: Level = Level.NONE
    cut_before: bool = False
    cut_after: bool = False

    def plain(self, stamps: bool = True) -> str:
        """The line as shown: with or without the service's timestamp."""
        return self.stamp + self.text if stamps else self.text


def _clip(spans: tuple[Span, ...], start: int, end: int) -> tuple[Span, ...]:
    """``spans`` restricted to ``text[start:end]`` and shifted to start at 0."""
    return tuple((max(s, start) - start, min(e, end) - start, r)
                 for s, e, r in spans if e > start and s < end)


def level_of(text: str) -> Level:
    """ERROR when the text holds an error word, else WARNING for a warning word."""
    level = Level.NONE
    for match in _LEVEL_WORD.finditer(text.lower()):
        if match["error"]:
            return Level.ERROR
        level = Level.WARNING
    return level


def shape_lines(raw: Sequence[str], *, first_cut: bool = False) -> tuple[LogLine, ...]:
    """Decoded lines of a log (no ``\\n``; may hold any characters) as LogLines.

    ``first_cut`` says the first line started before what was read. Colours carry
    from one line to the next, as on a terminal. A line longer than
    ``MAX_RAW_CHARS`` is read from its start, or from its end when that is what a
    terminal would show (it was cut before the window, or carriage returns redraw
    it), so the work per line is bounded. Never raises for what the text holds.
    """
    reader = AnsiReader()
    shaped = []
    for index, line in enumerate(raw):
        stamp = _STAMP.match(line)
        if stamp:
            line = line[stamp.end():]
        from_end = first_cut and index == 0
        cut_after = False
        if len(line) > MAX_RAW_CHARS:
            if from_end or "\r" in line:
                line, from_end = line[-MAX_RAW_CHARS:], True
            else:
                line, cut_after = line[:MAX_RAW_CHARS], True
        text, spans = reader.line(line)
        cut_before = from_end and not reader.restarted
        if len(text) > MAX_LINE_CHARS:
            if cut_before:
                start = len(text) - MAX_LINE_CHARS
                text, spans = text[start:], _clip(spans, start, len(text))
            else:
                text, spans = text[:MAX_LINE_CHARS], _clip(spans, 0, MAX_LINE_CHARS)
                cut_after = True
        shaped.append(LogLine(stamp.group() if stamp else "", text, spans, level_of(text),
                              cut_before, cut_after))
    return tuple(shaped)
