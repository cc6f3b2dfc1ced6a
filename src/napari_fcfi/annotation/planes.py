"""Edits of one 2-D label plane: an object's mask composed into the plane.

A *slice key* indexes the stack axes of a label volume, ``()`` for a 2-D image, ``(z,)``
for a Z stack, ``(t, z)`` for a time-lapse of stacks; the plane ``volume[key]`` is (Y, X).
"""

from __future__ import annotations

import numpy as np

SliceKey = tuple[int, ...]


def compose_object(
    plane: np.ndarray,
    mask: np.ndarray,
    object_id: int,
    allow_overwrite: bool,
    before: np.ndarray | None = None,
) -> np.ndarray:
    """The label plane with ``object_id`` set to ``mask``.

    Pixels of *other* objects inside ``mask`` are kept unless ``allow_overwrite``. Pixels
    of ``object_id`` outside ``mask`` become background, or, given ``before`` (the plane
    before the object was edited), get back the label they had then: a pixel the object
    took from another object is returned to it when the object lets it go.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != plane.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the label plane {plane.shape}")
    new = plane.copy()
    released = (plane == object_id) & ~mask
    if before is None:
        new[released] = 0
    else:
        new[released] = np.where(before[released] == object_id, 0, before[released])
    target = mask if allow_overwrite else mask & ((plane == 0) | (plane == object_id))
    new[target] = object_id
    return new


def restore_object(plane: np.ndarray, object_id: int, before: np.ndarray) -> np.ndarray:
    """``plane`` with the pixels of ``object_id`` put back to their values in ``before``."""
    return np.where(plane == object_id, before, plane)


def replace_where_unchanged(
    plane: np.ndarray, expected: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """``plane`` with ``target`` wherever it still equals ``expected``: an undo (or redo)
    that leaves pixels edited since then alone."""
    return np.where(plane == expected, target, plane)
