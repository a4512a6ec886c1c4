"""Check results and their states, in the monitoring-plugin convention.

States and exit codes are those of the Nagios plugin API, kept by the Monitoring
Plugins development guidelines (monitoring-plugins.org/doc/guidelines.html, "Plugin
Return Codes") and read the same way by Icinga, Naemon, Sensu and Zabbix: 0 OK, 1
WARNING, 2 CRITICAL, 3 UNKNOWN. ``CANCELLED`` is this project's own: a check someone
stopped found nothing and is never a problem; a report that ends cancelled exits 3
(the check did not complete).

Combining states follows ``max_state_alt`` of Monitoring Plugins (lib/states.h:
OK < UNKNOWN < WARNING < CRITICAL): one check that could not run does not hide a
warning found by another. CANCELLED ranks just above OK.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["State", "Finding", "CheckResult", "IntegrityReport"]


class State(str, enum.Enum):
    """A plugin state; the value is the word printed (``STEPFLOW WARNING - ...``)."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def exit_code(self) -> int:
        """The process exit status a monitoring plugin gives for this state."""
        return _EXIT[self]

    @classmethod
    def worst(cls, states: Iterable["State"]) -> "State":
        """The most severe of ``states`` (``max_state_alt`` order); OK when empty."""
        return max(states, key=_RANK.__getitem__, default=cls.OK)


_RANK = {s: i for i, s in enumerate(State)}
_EXIT = {State.OK: 0, State.WARNING: 1, State.CRITICAL: 2, State.UNKNOWN: 3,
         State.CANCELLED: 3}


@dataclass(frozen=True)
class Finding:
    """One thing a check found: ``severity`` (WARNING or CRITICAL) and one line of
    ``text`` naming the table, page, row or file (raw: the caller shows it literally)."""

    severity: State
    text: str

    def to_dict(self) -> dict[str, str]:
        """``{"severity", "text"}``."""
        return {"severity": self.severity.value, "text": self.text}


# How a check that did not complete weighs: a stop by request is no problem; an error
# or a deadline means the check could not say (UNKNOWN).
_STOPPED = {"cancelled": State.CANCELLED, "timeout": State.UNKNOWN, "error": State.UNKNOWN}


@dataclass(frozen=True)
class CheckResult:
    """The result of one check.

    ``status``: ``ok`` (ran, found nothing), ``failed`` (ran, ``findings`` say what),
    ``error`` (could not run), ``cancelled`` or ``timeout``; ``reason`` says why it did
    not complete. ``notes``: facts worth showing that are not findings (what the service
    does normally never is a finding). ``duration_s``: seconds.
    """

    name: str
    status: str = "ok"
    findings: tuple[Finding, ...] = ()
    duration_s: float = 0.0
    reason: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, findings: Iterable[Finding], duration_s: float,
           notes: Iterable[str] = ()) -> "CheckResult":
        """A check that ran: ``failed`` when there are findings, else ``ok``."""
        found = tuple(findings)
        return cls(name, "failed" if found else "ok", found, duration_s, None, tuple(notes))

    @classmethod
    def stopped(cls, name: str, status: str, reason: str,
                duration_s: float = 0.0) -> "CheckResult":
        """A check that did not complete: ``status`` is error, cancelled or timeout."""
        if status not in _STOPPED:
            raise ValueError(f"not a stop status: {status!r}")
        return cls(name, status, (), duration_s, reason)

    @property
    def severity(self) -> State:
        """CANCELLED or UNKNOWN when it did not complete, else the worst finding's."""
        if self.status in _STOPPED:
            return _STOPPED[self.status]
        return State.worst(f.severity for f in self.findings)

    @property
    def ok(self) -> bool:
        """True only when the check ran and found nothing."""
        return self.severity is State.OK

    @property
    def details(self) -> list[str]:
        """Lines to show: the reason it did not complete, the findings, the notes."""
        lines = [self.reason] if self.reason else []
        return lines + [f.text for f in self.findings] + [f"note: {n}" for n in self.notes]

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "status", "severity", "ok", "details", "findings", "notes",
        "duration_s"}`` (``details`` as :attr:`details`)."""
        return {"name": self.name, "status": self.status, "severity": self.severity.value,
                "ok": self.ok, "details": self.details,
                "findings": [f.to_dict() for f in self.findings], "notes": list(self.notes),
                "reason": self.reason, "duration_s": round(self.duration_s, 6)}


@dataclass(frozen=True)
class IntegrityReport:
    """All results of one run. ``started``: epoch seconds; ``duration_s``: seconds;
    ``snapshot_s``: the longest time one snapshot of the live database was held
    (seconds); ``copy_bytes``: size of the private copy (bytes); ``copy_target``:
    ``memory`` or ``file``."""

    results: list[CheckResult] = field(default_factory=list)
    started: float = 0.0
    duration_s: float = 0.0
    snapshot_s: float = 0.0
    copy_bytes: int = 0
    copy_target: str = ""

    @property
    def state(self) -> State:
        """The worst state of the results (:meth:`State.worst`)."""
        return State.worst(r.severity for r in self.results)

    @property
    def ok(self) -> bool:
        """True when every check ran and passed."""
        return self.state is State.OK

    def to_dict(self) -> dict[str, Any]:
        """``{"state", "exit_code", "ok", "checks": [...], "started", "duration_s",
        "snapshot_s", "copy_bytes", "copy_target"}``."""
        return {"state": self.state.value, "exit_code": self.state.exit_code, "ok": self.ok,
                "checks": [r.to_dict() for r in self.results],
                "started": self.started, "duration_s": round(self.duration_s, 6),
                "snapshot_s": round(self.snapshot_s, 6), "copy_bytes": self.copy_bytes,
                "copy_target": self.copy_target}
