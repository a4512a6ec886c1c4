"""The view settings now live in :mod:`stepflow_top.live.settings`; this name remains
only until ``ui/app.py`` and ``ui/executions.py`` import from there."""

from .live.settings import SORTS, Settings

__all__ = ["SORTS", "Settings"]
