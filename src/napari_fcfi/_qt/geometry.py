"""Where a click lands: viewer and layer coordinates to image planes (napari layers)."""

from __future__ import annotations

import numpy as np

from .. import _layers
from ..annotation.planes import SliceKey


def to_image_coords(image_layer, coord, source_layer) -> np.ndarray:
    """``coord`` in ``source_layer``'s data coordinates -> the image's data coordinates."""
    world = source_layer.data_to_world(np.asarray(coord, dtype=float))
    return np.asarray(image_layer.world_to_data(world), dtype=float)


def locate(image_layer, data_coord) -> tuple[SliceKey, int, int]:
    """Image data coordinates -> (slice key, y, x); ``ValueError`` outside the image."""
    shape = _layers.spatial_shape(image_layer)
    idx = np.round(np.asarray(data_coord, dtype=float)).astype(int)
    if idx.shape[0] != len(shape):
        raise ValueError(f"click has {idx.shape[0]} coordinates, the image {len(shape)} axes")
    if np.any(idx < 0) or np.any(idx >= np.asarray(shape)):
        raise ValueError("click is outside the image")
    return tuple(int(i) for i in idx[:-2]), int(idx[-2]), int(idx[-1])


def current_slice(viewer, image_layer) -> SliceKey:
    """Key of the 2-D plane of the image that the viewer shows now (``()`` without one)."""
    if image_layer is None:
        return ()
    shape = _layers.spatial_shape(image_layer)
    data = np.asarray(image_layer.world_to_data(viewer.dims.point), dtype=float)
    idx = np.clip(np.round(data[: len(shape) - 2]).astype(int), 0, np.asarray(shape[:-2]) - 1)
    return tuple(int(i) for i in idx)
