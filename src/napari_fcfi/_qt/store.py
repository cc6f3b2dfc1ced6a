"""A :class:`~napari_fcfi.annotation.store.LabelStore` over a napari Labels layer.

Every write goes through :meth:`napari.layers.Labels.data_setitem`, so it lands in the
layer's own undo history (Ctrl+Z in napari undoes it); a group is one history step. Used
on the GUI thread only.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .. import _layers
from ..annotation.planes import Rect, SliceKey


class NapariLabelStore:
    """The planes of ``layer`` (a napari Labels layer).

    The largest label is computed once and then kept up to date from the store's own
    writes; any other change of the layer (painting, napari's undo, new data) makes the
    next :meth:`max_label` compute it again, so a fresh id never collides with a label.
    """

    def __init__(self, layer):
        self.layer = layer
        self._depth = 0  # napari closes a history step at the end of every inner group
        self._own = 0  # > 0 while the store itself changes the layer
        self._max: int | None = None
        for name in ("paint", "data", "set_data"):
            emitter = getattr(layer.events, name, None)
            if emitter is not None:
                emitter.connect(self._changed)

    def _changed(self, event=None) -> None:
        if not self._own:
            self._max = None

    @contextmanager
    def _writing(self, values: np.ndarray):
        self._own += 1
        try:
            yield
            if self._max is not None and values.size:
                self._max = max(self._max, int(values.max()))
        finally:
            self._own -= 1

    def read_plane(self, key: SliceKey) -> np.ndarray:
        return _layers.read_plane(self.layer, key)

    def read_region(self, key: SliceKey, rect: Rect) -> np.ndarray:
        return _layers.read_region(self.layer, key, rect)

    def write_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        plane = np.asarray(plane)
        with self._writing(plane):
            _layers.set_plane(self.layer, key, plane)

    def write_region(self, key: SliceKey, rect: Rect, values: np.ndarray) -> None:
        values = np.asarray(values)
        with self._writing(values):
            _layers.set_region(self.layer, key, rect, values)

    @contextmanager
    def group(self):
        if self._depth:
            yield
            return
        self._depth += 1
        self._own += 1  # napari reports the grouped step when the group closes
        try:
            with _layers.history_group(self.layer):
                yield
        finally:
            self._depth -= 1
            self._own -= 1

    def preview_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        plane = np.asarray(plane)
        with self._writing(plane):
            self.layer.data[tuple(key)] = plane
            self.layer.refresh()

    def max_label(self) -> int:
        if self._max is None:
            data = self.layer.data
            self._max = int(np.max(data)) if data.size else 0
        return self._max
