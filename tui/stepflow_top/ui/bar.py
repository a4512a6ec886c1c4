"""Where ``ui/logscreen.py`` still imports the store bar from: it lives in
``ui/widgets/store_bar.py``; this goes once that import names ``.widgets``."""

from .widgets.store_bar import STEP_STYLES, StoreBar

__all__ = ["STEP_STYLES", "StoreBar"]
