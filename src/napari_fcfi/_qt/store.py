"""A :class:`~napari_fcfi.annotation.store.LabelStore` over a napari Labels layer.

Every write goes through :meth:`napari.layers.Labels.data_setitem`, so it lands in the
layer's own undo history (Ctrl+Z in napari undoes it); a group is one history step. Used
on the GUI thread only.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .. import _layers
from ..annotation.planes import SliceKey


class NapariLabelStore:
    """The planes of ``layer`` (a napari Labels layer)."""

    def __init__(self, layer):
        self.layer = layer
        self._depth = 0  # napari closes a history step at the end of every inner group

    def read_plane(self, key: SliceKey) -> np.ndarray:
        return _layers.read_plane(self.layer, key)

    def write_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        _layers.set_plane(self.layer, key, np.asarray(plane))

    @contextmanager
    def group(self):
        if self._depth:
            yield
            return
        self._depth += 1
        try:
            with _layers.history_group(self.layer):
                yield
        finally:
            self._depth -= 1

    def preview_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        self.layer.data[tuple(key)] = plane
        self.layer.refresh()

    def max_label(self) -> int:
        data = self.layer.data
        return int(np.max(data)) if data.size else 0
