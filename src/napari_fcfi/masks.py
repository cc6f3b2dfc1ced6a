"""Geometry of binary masks shared by the engine, propagation, refinement and evaluation.

* :func:`iou`: intersection over union, optionally inside a validity mask;
* :func:`boundary_distance`: Euclidean distance of every pixel to the background, the array
  edges counting as background (:func:`squared_boundary_distance`: squared, exact integers);
* :func:`interior_point` and :func:`deepest_point`: the pixel farthest from the background,
  where a click on an object (or on a region to correct) is least ambiguous;
* :func:`object_contrast`: how much an object stands out from a ring around it, the
  evidence that propagation uses to tell an object from an empty slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "boundary_distance",
    "deepest_point",
    "interior_point",
    "iou",
    "object_contrast",
    "squared_boundary_distance",
]


def iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty).

    With ``valid``, only the pixels where it is True count (ignore regions)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    inter, union = a & b, a | b
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        inter, union = inter & valid, union & valid
    n = np.count_nonzero(union)
    return float(np.count_nonzero(inter)) / n if n else 1.0


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each pixel of ``mask`` to the nearest background pixel (0 outside).

    The array edges count as background, so an object cut by the image border still has
    its deepest point inside it."""
    mask = np.asarray(mask, dtype=bool)
    return ndi.distance_transform_edt(np.pad(mask, 1))[(slice(1, -1),) * mask.ndim]


def squared_boundary_distance(mask: np.ndarray) -> np.ndarray:
    """:func:`boundary_distance` squared and rounded to int64 (exact: ties and maxima
    compare exactly, as the robot user of the NoC protocol needs).

    Only the bbox of the True pixels is transformed (everything around it is False, so
    the values are the same as for the 1-px-padded whole mask, only cheaper)."""
    out = np.zeros(mask.shape, np.int64)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(mask.any(axis=0))
    sl = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    padded = np.pad(mask[sl], 1, mode="constant", constant_values=False)
    dist = ndi.distance_transform_edt(padded)[1:-1, 1:-1]
    # squared distances are integers: round them so that ties and maxima are exact
    out[sl] = np.rint(dist * dist).astype(np.int64)
    return out


def deepest_point(mask: np.ndarray) -> tuple[float, int, int] | None:
    """``(depth, y, x)`` of the pixel of a 2-D ``mask`` farthest from the background (the
    first one in row-major order on ties), or ``None`` for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    if not mask.any():
        return None
    dist = boundary_distance(mask)
    idx = int(np.argmax(dist))
    y, x = divmod(idx, mask.shape[1])
    return float(dist.flat[idx]), int(y), int(x)


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of ``mask`` farthest from the background, ``(y, x)``.

    Raises ``ValueError`` for an empty mask."""
    found = deepest_point(mask)
    if found is None:
        raise ValueError("mask is empty: there is no object to click")
    return found[1], found[2]


def object_contrast(image: np.ndarray, mask: np.ndarray, ring: int = 3) -> float:
    """Mean intensity inside ``mask`` minus the mean in a ``ring``-pixel band around it.

    ``image`` is (H, W) or (H, W, C) (channels are averaged). Returns 0.0 when the mask is
    empty or has no surroundings inside the image."""
    mask = np.asarray(mask, dtype=bool)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    if img.shape != mask.shape:
        raise ValueError(f"image shape {img.shape} does not match mask shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0.0
    cols = np.flatnonzero(mask.any(axis=0))
    r = max(int(ring), 1)
    box = (
        slice(max(rows[0] - r, 0), rows[-1] + r + 1),
        slice(max(cols[0] - r, 0), cols[-1] + r + 1),
    )
    m, im = mask[box], img[box]
    band = ndi.binary_dilation(m, iterations=r) & ~m
    if not band.any():
        return 0.0
    return float(im[m].mean() - im[band].mean())
