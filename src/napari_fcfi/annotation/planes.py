"""Edits of one 2-D label plane: an object's mask composed into the plane.

A *slice key* indexes the stack axes of a label volume, ``()`` for a 2-D image, ``(z,)``
for a Z stack, ``(t, z)`` for a time-lapse of stacks; the plane ``volume[key]`` is (Y, X).

A *rect* ``(y0, y1, x0, x1)`` (end-exclusive) is a rectangle of a plane. The editor works on
the rectangle around the object it edits, never on more of the plane than that, so a click
on a 20,000 x 20,000 image costs the object, not the image. The functions below apply to a
whole plane or to a rectangle of it alike.
"""

from __future__ import annotations

import numpy as np

SliceKey = tuple[int, ...]
Rect = tuple[int, int, int, int]  # (y0, y1, x0, x1), end-exclusive


def full_rect(shape) -> Rect:
    """The rect of a whole (H, W) plane."""
    return 0, int(shape[-2]), 0, int(shape[-1])


def rect_slices(rect: Rect) -> tuple[slice, slice]:
    return slice(rect[0], rect[1]), slice(rect[2], rect[3])


def rect_of_slices(sy: slice, sx: slice) -> Rect:
    return int(sy.start), int(sy.stop), int(sx.start), int(sx.stop)


def rect_union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def rect_contains(outer: Rect, inner: Rect) -> bool:
    return (
        outer[0] <= inner[0]
        and inner[1] <= outer[1]
        and outer[2] <= inner[2]
        and inner[3] <= outer[3]
    )


def mask_rect(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> Rect | None:
    """The rect of the True pixels of ``mask`` (placed at ``origin``), or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y, x = origin
    return y + int(rows[0]), y + int(rows[-1]) + 1, x + int(cols[0]), x + int(cols[-1]) + 1


def around(rect: Rect, ratio: float, min_side: int, shape) -> Rect:
    """``rect`` scaled by ``ratio`` about its centre, each side at least ``min_side``,
    clamped to a plane of ``shape``."""
    H, W = int(shape[-2]), int(shape[-1])
    out = []
    for lo, hi, n in ((rect[0], rect[1], H), (rect[2], rect[3], W)):
        side = max(ratio * (hi - lo), min_side)
        centre = 0.5 * (lo + hi)
        out += [max(0, int(np.floor(centre - side / 2))), min(n, int(np.ceil(centre + side / 2)))]
    return out[0], out[1], out[2], out[3]


def reframe(values: np.ndarray, src: Rect, dst: Rect, fill=0) -> np.ndarray:
    """``values`` (covering ``src``) as an array covering ``dst``: the overlap copied,
    ``fill`` elsewhere."""
    out = np.full((dst[1] - dst[0], dst[3] - dst[2]), fill, dtype=values.dtype)
    y0, y1 = max(src[0], dst[0]), min(src[1], dst[1])
    x0, x1 = max(src[2], dst[2]), min(src[3], dst[3])
    if y1 > y0 and x1 > x0:
        out[y0 - dst[0] : y1 - dst[0], x0 - dst[2] : x1 - dst[2]] = values[
            y0 - src[0] : y1 - src[0], x0 - src[2] : x1 - src[2]
        ]
    return out


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
    """``plane`` with the object ``object_id`` put back as it was in ``before``: its pixels
    get their values in ``before`` again, and the pixels it had in ``before`` that are
    background now are its own again (pixels another label has taken since stay so)."""
    out = np.where(plane == object_id, before, plane)
    out[(before == object_id) & (plane == 0)] = object_id
    return out


def replace_where_unchanged(
    plane: np.ndarray, expected: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """``plane`` with ``target`` wherever it still equals ``expected``: an undo (or redo)
    that leaves pixels edited since then alone."""
    return np.where(plane == expected, target, plane)
