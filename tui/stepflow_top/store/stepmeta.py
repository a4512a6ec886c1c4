"""What a step's ``META:`` markers say: its progress, description and estimated duration.

The service stores ``META:key:value`` as ``metadata[key] = value`` in the step row's
``metadata`` JSON object, the key as the script wrote it and the value as the text after
the second colon, unstripped (StepFlow Monitor ``app/core/marker_parser.py``
``meta_key_value`` and ``app/core/execution_engine.py`` ``_handle_metadata``). Its own
examples are ``META:ESTIMATED_DURATION:300`` and ``META:DESCRIPTION:...``; scripts also
write ``META:PROGRESS:50`` or ``META:progress: 50%``. ``STEP_START:name [duration=60]``
puts ``duration`` (an int) in the metadata and in the ``estimated_duration`` column.
Keys are matched ignoring case, so ``progress`` and ``PROGRESS`` are one key.

Pure and total: any text, any JSON, any type gives a :class:`StepMeta`; a value that
cannot be read is kept as ``*_raw`` text for a view to show as it is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

PROGRESS_KEYS = ("progress",)
DESCRIPTION_KEYS = ("description",)
ESTIMATE_KEYS = ("estimated_duration", "duration")
_UNITS = {"h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
          "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
          "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)")
_FRACTION = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class StepMeta:
    """A step's metadata as a person reads it.

    ``progress``: percent done, 0 to 100 (float), None when not given or unreadable;
    ``progress_raw``: the stored value as text when it could not be read (``"almost"``,
    ``"150%"``), else None. ``estimate``: estimated duration in seconds (> 0), None when
    not given or unreadable; ``estimate_raw`` as for progress. ``description``: the
    stripped ``DESCRIPTION`` text, else the row's ``description`` column, None when both
    are empty.
    """

    progress: float | None = None
    progress_raw: str | None = None
    estimate: float | None = None
    estimate_raw: str | None = None
    description: str | None = None

    @property
    def empty(self) -> bool:
        return self == EMPTY


EMPTY = StepMeta()


def parse_step_meta(metadata: str | None, *, estimated_duration: float | None = None,
                    description: str | None = None) -> StepMeta:
    """Read a step row's ``metadata`` JSON text (None, ``""``, invalid JSON or a JSON
    value that is not an object count as no metadata) together with the row's
    ``estimated_duration`` (seconds) and ``description`` columns.

    An explicit ``META:ESTIMATED_DURATION`` wins over the column (which only holds a
    ``[duration=N]`` parameter of ``STEP_START``). Never raises.
    """
    values = _object(metadata)
    progress, progress_raw = _read(_first(values, PROGRESS_KEYS), parse_progress)
    estimate, estimate_raw = _read(_first(values, ESTIMATE_KEYS[:1]), parse_seconds)
    if estimate is None and estimate_raw is None:
        fallback = (estimated_duration if estimated_duration is not None
                    else _first(values, ESTIMATE_KEYS[1:]))
        estimate, estimate_raw = _read(fallback, parse_seconds)
    text = _first(values, DESCRIPTION_KEYS)
    said = _text(text).strip() if text is not None else ""
    return StepMeta(progress, progress_raw, estimate, estimate_raw,
                    said or (description or "").strip() or None)


def parse_progress(value: object) -> float | None:
    """Percent done from ``50``, ``50.5``, ``"50"``, ``" 50%"`` or ``"3/10"`` (30.0);
    None for anything else, including values outside 0-100 and ``x/0``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        fraction = _FRACTION.fullmatch(text)
        if fraction:
            done, total = float(fraction.group(1)), float(fraction.group(2))
            return 100.0 * done / total if 0 < total and done <= total else None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 100.0 else None


def parse_seconds(value: object) -> float | None:
    """A duration in seconds from a number (seconds), ``"300"``, ``"90s"``, ``"5m"``,
    ``"1h30m"``, ``"2.5 min"``; None for anything else, zero and negatives included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _with_units(text)
            if seconds is None:
                return None
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _with_units(text: str) -> float | None:
    total, at = 0.0, 0
    for match in _PART.finditer(text):
        if match.start() != at or match.group(2) not in _UNITS:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        at = match.end()
    return total if at and at == len(text) else None


def _object(metadata: str | None) -> dict:
    if not metadata:
        return {}
    try:
        value = json.loads(metadata)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _first(values: dict, keys: tuple[str, ...]) -> object:
    """The value of the first of ``keys`` present, matched ignoring case (the service
    keeps the key as the script wrote it); None when none is."""
    folded = {str(k).strip().lower(): v for k, v in values.items()}
    return next((folded[k] for k in keys if folded.get(k) is not None), None)


def _read(value: object, parse) -> tuple[float | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    number = parse(value)
    return (number, None) if number is not None else (None, _text(value).strip())


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
