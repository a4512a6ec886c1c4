"""The executions list's ``/`` filter: qualifiers and free text, parsed without Textual.

``user:alice tag:nightly status:failed since:1h deploy`` means: user ``alice``, the tag
``nightly``, effective status failed, created in the last hour, and ``deploy`` somewhere
in the name, command, id, user or tags (case-insensitive substring). Words are ANDed.
``store:prod`` keeps the runs of the store named ``prod`` when several are watched
(``live.stores``; several ``store:`` words are ORed, as a store has one name).
``since:`` takes a count and a unit (``30s``, ``15m``, ``1h``, ``2d``, ``1w``) or a date
(``2026-11-30``, that day's midnight) or a date and time (``2026-11-30T08:00``); times
are the writer's local times, as stored (STEPFLOW_STORE.md: ``created_at`` is local time
with no zone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Status

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}  # seconds per unit
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
QUALIFIERS = ("user", "tag", "status", "since", "store")


class FilterError(ValueError):
    """A qualifier whose value cannot be understood; the message is one line for people."""


@dataclass(frozen=True)
class Filter:
    """A parsed filter: ``words`` (free text, each a substring), ``user`` (exact user
    name, case-insensitive), ``tags``, ``status``, and ``since`` (writer-local naive
    time: executions created at or after it); ``stores``: store names, applied by
    ``live.stores`` before a store is read, not by :meth:`where`."""

    words: tuple[str, ...] = ()
    user: str | None = None
    tags: tuple[str, ...] = ()
    status: Status | None = None
    since: datetime | None = None
    stores: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.words or self.user or self.tags or self.status or self.since
                    or self.stores)

    def describe(self) -> str:
        """The filter as one short line for the view-state line (empty when none)."""
        parts = [f"store {name}" for name in self.stores]
        if self.user:
            parts.append(f"user {self.user}")
        parts += [f"tag {t}" for t in self.tags]
        if self.status:
            parts.append(f"status {self.status.label}")
        if self.since:
            parts.append(f"since {self.since:%Y-%m-%d %H:%M}")
        parts += [f'"{w}"' for w in self.words]
        return ", ".join(parts)

    def where(self) -> tuple[str, list]:
        """An SQL condition over the executions table and its parameters (``1`` when the
        filter is empty). ``status`` is left to the caller: a live effective status
        (stalled, lost) is judged from step rows, not stored."""
        where: list[str] = []
        params: list = []
        for word in self.words:
            like = _like(word)
            where.append("(" + " OR ".join(
                f"{column} LIKE ? ESCAPE '\\'"
                for column in ("name", "user_name", "id", "command", "tags")) + ")")
            params += [like] * 5
        if self.user:
            where.append("user_name = ? COLLATE NOCASE")
            params.append(self.user)
        for tag in self.tags:
            # tags is a JSON array of strings: match one whole element.
            where.append("tags LIKE ? ESCAPE '\\'")
            params.append('%"' + _escape(tag) + '"%')
        if self.since:
            where.append("created_at >= ?")
            params.append(self.since.isoformat())
        return (" AND ".join(where) or "1"), params


def parse(text: str | None, now: datetime) -> Filter:
    """Parse the ``/`` field's text; ``now`` is the writer-local naive time ``since:1h``
    counts back from. Raises FilterError for an unknown status word or an unreadable
    ``since:`` value. An unknown ``word:`` is free text (an id or a name may hold ``:``)."""
    words: list[str] = []
    tags: list[str] = []
    stores: list[str] = []
    user = status = since = None
    for token in (text or "").split():
        key, sep, value = token.partition(":")
        key = key.lower()
        if not sep or key not in QUALIFIERS:
            words.append(token)
        elif not value:
            raise FilterError(f"{key}: needs a value, e.g. {_EXAMPLES[key]}")
        elif key == "user":
            user = value
        elif key == "tag":
            tags.append(value)
        elif key == "status":
            status = _status(value)
        elif key == "store":
            stores.append(value)
        else:
            since = _since(value, now)
    return Filter(tuple(words), user, tuple(tags), status, since, tuple(stores))


_EXAMPLES = {"user": "user:alice", "tag": "tag:nightly", "status": "status:failed",
             "since": "since:1h or since:2026-11-30", "store": "store:prod"}


def _status(word: str) -> Status:
    try:
        return Status(word.lower())
    except ValueError:
        known = ", ".join(s.value for s in Status if s is not Status.UNKNOWN)
        raise FilterError(f"status:{word} is not a status; use one of {known}") from None


def _since(value: str, now: datetime) -> datetime:
    ago = _AGO.match(value.lower())
    try:
        if ago:
            return now - timedelta(seconds=float(ago.group(1)) * UNITS[ago.group(2)])
        return datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise FilterError(f"since:{value} is neither an age (30m, 1h, 2d) nor a date "
                          "(2026-11-30)") from None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return "%" + _escape(text) + "%"
