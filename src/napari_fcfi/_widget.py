"""The "Interactive segmentation (FCFI)" dock widget.

napari's manifest names ``napari_fcfi._widget:FCFIWidget``; the widget lives in
:mod:`napari_fcfi._qt.widget` and its editing rules in :mod:`napari_fcfi.annotation`.
"""

from __future__ import annotations

from ._qt.shortcuts import SHORTCUTS
from ._qt.widget import FCFIWidget

__all__ = ["FCFIWidget", "SHORTCUTS"]
