"""Where the editor looks on a plane: the whole plane of an ordinary image, the rectangle
around the object on a very large one.

On planes of up to :data:`FULL_PLANE_PIXELS` pixels a command reads and writes the whole
plane. On larger planes (a whole-slide scan of 20,000 x 20,000 pixels) it reads and writes
only the rectangle around its object: the object's bounding box and the clicks, scaled by
:data:`NEIGHBOURHOOD_RATIO` about their centre (at least :data:`NEIGHBOURHOOD_MIN` px a
side), grown as the object grows (:meth:`~napari_fcfi.annotation.objects.SliceState.grow`).
An existing label that a click continues is followed to its extent around the click
(:func:`start_rect`). The cost of a click is then the object's, not the image's.
"""

from __future__ import annotations

import numpy as np

from .objects import SliceState
from .planes import Rect, SliceKey, around, full_rect, mask_rect, rect_contains, rect_union

#: planes up to this many pixels are edited whole
FULL_PLANE_PIXELS = 2048 * 2048
NEIGHBOURHOOD_RATIO = 2.0
NEIGHBOURHOOD_MIN = 256
#: how often the search for an existing label's extent may grow its rectangle
EXTENT_STEPS = 12


def neighbourhood(shape, extent: Rect | None, y: int, x: int) -> Rect:
    """The rect to examine on a plane of ``shape`` for an object of ``extent`` (None: not
    there yet) clicked at (y, x)."""
    shape = (int(shape[-2]), int(shape[-1]))
    if shape[0] * shape[1] <= FULL_PLANE_PIXELS:
        return full_rect(shape)
    box = rect_union(extent, (y, y + 1, x, x + 1))
    return around(box, NEIGHBOURHOOD_RATIO, NEIGHBOURHOOD_MIN, shape)


def start_rect(store, key: SliceKey, shape, object_id: int, y: int, x: int):
    """``(rect, labels there)``: the first rect of an object on a plane, grown until it
    holds the extent (and neighbourhood) of the object's existing pixels near (y, x)."""
    rect = neighbourhood(shape, None, y, x)
    labels = store.read_region(key, rect)
    for _ in range(EXTENT_STEPS):
        extent = mask_rect(labels == object_id, (rect[0], rect[2]))
        if extent is None:
            break
        want = rect_union(rect, neighbourhood(shape, extent, y, x))
        if want == rect:
            break
        rect = want
        labels = store.read_region(key, rect)
    return rect, labels


def look(store, key: SliceKey, state: SliceState, rect: Rect) -> np.ndarray:
    """Grow ``state`` to cover ``rect``; returns the current labels in ``state.rect``."""
    if rect_contains(state.rect, rect):
        return store.read_region(key, state.rect)
    union = rect_union(state.rect, rect)
    labels = store.read_region(key, union)
    state.grow(union, labels)
    return labels


def extent(state: SliceState) -> Rect | None:
    """The rect of the object's pixels as the editor last wrote or read them."""
    return mask_rect(state.written, (state.rect[0], state.rect[2]))


def feedback_map(shape, rect: Rect, mask: np.ndarray):
    """The object's mask in ``rect`` as the network's feedback (0 outside ``rect``)."""
    from ..inference.maps import RoiMap

    return RoiMap((int(shape[-2]), int(shape[-1])), rect[0], rect[2], mask.astype(np.float32))
