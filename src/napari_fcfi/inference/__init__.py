"""Interactive inference: :class:`Predictor` (clicks -> probability, FCFI's zoom-in, flip and
feedback) and :class:`InteractiveSession` (one object, exact undo/redo)."""

from __future__ import annotations

from ..devices import pick_device
from .inputs import PreparedImage
from .maps import RoiMap
from .passes import Prediction
from .predictor import Predictor
from .session import InteractiveSession
from .views import ZoomState

__all__ = [
    "Predictor",
    "InteractiveSession",
    "Prediction",
    "PreparedImage",
    "RoiMap",
    "ZoomState",
    "pick_device",
]
