"""View settings that stick between sessions (UX.md: "Settings that stick").

Kept as JSON in ``<state dir>/stepflow-top/settings.json`` (:func:`.state.settings_path`,
XDG, like the checkpoint history). A missing, unreadable or malformed file gives the
defaults; a file that cannot be written is skipped silently: settings are a
convenience, never a reason to fail.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..store.models import Status
from .refresher import ViewRequest
from .state import settings_path

SORTS = ("started", "status", "name", "user", "duration", "exit")
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0  # seconds


@dataclass
class Settings:
    """``sort``: the executions list's order (one of SORTS; ``sort_reverse`` flips it);
    ``status``: the effective-status filter word, or None; ``interval``: seconds of
    the fallback timer (or of polling) last chosen with +/-, or None; ``theme``: the
    Textual theme's name chosen in the command palette, or None (the App checks that
    it still exists)."""

    sort: str = "started"
    sort_reverse: bool = False
    status: str | None = None
    interval: float | None = None
    theme: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        try:
            data = json.loads((path or settings_path()).read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        if data.get("sort") == "newest":  # what "started" was called before
            data["sort"] = "started"
        settings = cls(**{k: v for k, v in data.items() if k in known})
        return settings if settings._valid() else cls()

    def view_request(self) -> ViewRequest:
        """What the executions list shows at start: the saved sort and status filter
        (validated on load, so the word is a Status)."""
        return ViewRequest(status=Status(self.status) if self.status else None,
                           sort=self.sort, reverse=self.sort_reverse)

    def save(self, path: Path | None = None) -> None:
        """Write atomically (a temporary file renamed over the old one)."""
        path = path or settings_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
                json.dump(asdict(self), handle)
            os.replace(handle.name, path)
        except OSError:
            pass

    def _valid(self) -> bool:
        """As strict as the command line: a known sort and status word, and an interval
        in the range +/- can choose (a tiny one would spin a core)."""
        from ..store.models import Status

        return (self.sort in SORTS and isinstance(self.sort_reverse, bool)
                and (self.status is None or self.status in Status._value2member_map_)
                and (self.theme is None or isinstance(self.theme, str))
                and (self.interval is None or (
                    isinstance(self.interval, (int, float)) and not isinstance(self.interval, bool)
                    and MIN_INTERVAL <= self.interval <= MAX_INTERVAL)))
