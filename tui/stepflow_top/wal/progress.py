"""Progress of a run made of phases, as one fraction that never goes backwards."""

from __future__ import annotations

from typing import Callable

__all__ = ["Progress", "Reporter"]

#: Progress callback: (fraction 0..1, phrase).
Progress = Callable[[float, str], None]


class Reporter:
    """Maps per-phase fractions onto one overall fraction weighted by expected time."""

    def __init__(self, cb: Progress | None) -> None:
        self.cb = cb
        self.weights: dict[str, float] = {}
        self.order: list[str] = []
        self.last = 0.0

    def plan(self, weights: dict[str, float]) -> None:
        """``weights``: expected seconds of each phase, by name, in running order."""
        self.weights, self.order = weights, list(weights)

    def phase(self, name: str, f: float, phrase: str) -> None:
        """Phase ``name`` is ``f`` (0..1) done; unknown phases are ignored."""
        if not self.weights or name not in self.weights:
            return
        total = sum(self.weights.values())
        before = sum(self.weights[n] for n in self.order[: self.order.index(name)])
        self.fraction((before + self.weights[name] * max(0.0, min(1.0, f))) / total, phrase)

    def fraction(self, f: float, phrase: str) -> None:
        """Report ``f`` (0..1) of the whole run to the callback, never less than before."""
        f = max(self.last, min(1.0, f))  # never goes backwards
        self.last = f
        if self.cb is not None:
            try:
                self.cb(f, phrase)
            except Exception:
                pass  # a broken callback must not break the check
