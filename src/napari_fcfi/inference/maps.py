"""Probability maps that are zero outside a rectangle, and image views for the network.

FCFI's predictor pastes every output into a zero map of the image size, so a prediction is
fully described by its rectangle and the values inside it. :class:`RoiMap` keeps only that,
which bounds the memory and time per click by the crop, not by the image (an 8000 x 8000
float32 map is 256 MB; a session keeps one per undo step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # (rmin, rmax, cmin, cmax), inclusive (official ZoomIn layout)


@dataclass(frozen=True, eq=False)
class RoiMap:
    """A float32 (H, W) map that is 0 outside ``data``'s rectangle at ``(y0, x0)``.

    ``data`` is read-only, so maps can be shared between undo snapshots safely.
    """

    shape: tuple[int, int]
    y0: int
    x0: int
    data: np.ndarray

    def __post_init__(self):
        data = np.asarray(self.data, dtype=np.float32)
        if data.ndim != 2:
            raise ValueError(f"RoiMap data must be 2-D, got {data.shape}")
        if data.flags.writeable:
            data = data.view()
            data.flags.writeable = False
        object.__setattr__(self, "data", data)

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_array(cls, arr: np.ndarray, compact: bool = True) -> RoiMap:
        """Wrap a full (H, W) map; ``compact`` keeps only the bbox of its non-zero pixels."""
        arr = np.asarray(arr, dtype=np.float32)
        if not compact:
            return cls(arr.shape, 0, 0, arr)
        box = bbox(arr != 0)
        if box is None:
            return cls(arr.shape, 0, 0, np.zeros((0, 0), np.float32))
        r0, r1, c0, c1 = box
        return cls(arr.shape, r0, c0, arr[r0 : r1 + 1, c0 : c1 + 1].copy())

    @property
    def slices(self) -> tuple[slice, slice]:
        """The rectangle as ``(slice_y, slice_x)`` into the full map."""
        h, w = self.data.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def full(self) -> np.ndarray:
        """The whole (H, W) float32 map (zeros outside the rectangle)."""
        out = np.zeros(self.shape, np.float32)
        out[self.slices] = self.data
        return out

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Values in rows ``y0:y1`` and columns ``x0:x1`` (end-exclusive), 0 outside the map's
        rectangle."""
        out = np.zeros((y1 - y0, x1 - x0), np.float32)
        h, w = self.data.shape
        ty0, ty1 = max(y0, self.y0), min(y1, self.y0 + h)
        tx0, tx1 = max(x0, self.x0), min(x1, self.x0 + w)
        if ty1 > ty0 and tx1 > tx0:
            out[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0] = self.data[
                ty0 - self.y0 : ty1 - self.y0, tx0 - self.x0 : tx1 - self.x0
            ]
        return out

    def take(self, rows, cols) -> np.ndarray:
        """Values at the grid ``rows`` x ``cols`` (full-map coordinates), 0 outside the map's
        rectangle: a (len(rows), len(cols)) float32 array, whatever the rectangle's size."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        out = np.zeros((rows.size, cols.size), np.float32)
        h, w = self.data.shape
        ry, cx = rows - self.y0, cols - self.x0
        in_y = (ry >= 0) & (ry < h)
        in_x = (cx >= 0) & (cx < w)
        if in_y.any() and in_x.any():
            out[np.ix_(in_y, in_x)] = self.data[np.ix_(ry[in_y], cx[in_x])]
        return out

    def bbox_above(self, thresh: float) -> Box | None:
        """Inclusive bbox (in full-map coordinates) of the pixels ``> thresh``, or None."""
        if thresh < 0:
            raise ValueError("thresh must be >= 0 (the map is 0 outside its rectangle)")
        box = bbox(self.data > thresh)
        if box is None:
            return None
        r0, r1, c0, c1 = box
        return r0 + self.y0, r1 + self.y0, c0 + self.x0, c1 + self.x0

    def above(self, thresh: float) -> np.ndarray:
        """Bool mask of the rectangle's pixels ``> thresh`` (the shape of ``data``)."""
        return self.data > thresh

    def any_above(self, thresh: float = 0.0) -> bool:
        """Whether some pixel is ``> thresh`` (``thresh >= 0``)."""
        return bool(self.data.size) and bool((self.data > thresh).any())

    def max(self) -> float:
        return float(self.data.max()) if self.data.size else 0.0


def bbox(mask: np.ndarray) -> Box | None:
    """Inclusive (rmin, rmax, cmin, cmax) of the True pixels of a 2-D mask, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def expand_bbox(box: Box, ratio: float, min_size: float) -> Box:
    """Scale an inclusive bbox about its centre, each side at least ``min_size``, rounded
    (Python's round-half-to-even, as the official ZoomIn)."""
    rmin, rmax, cmin, cmax = box
    rc, cc = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
    height = max(ratio * (rmax - rmin + 1), min_size)
    width = max(ratio * (cmax - cmin + 1), min_size)
    return (
        int(round(rc - 0.5 * height)),
        int(round(rc + 0.5 * height)),
        int(round(cc - 0.5 * width)),
        int(round(cc + 0.5 * width)),
    )


def clamp_bbox(box: Box, height: int, width: int) -> Box:
    return max(0, box[0]), min(height - 1, box[1]), max(0, box[2]), min(width - 1, box[3])


def bbox_iou(a: Box, b: Box) -> float:
    """IoU of two inclusive bboxes as the official ZoomIn computes it (product of the
    per-axis segment IoUs)."""

    def seg(s0, s1, t0, t1):
        inter = max(0, min(s1, t1) - max(s0, t0) + 1)
        union = max(1e-6, max(s1, t1) - min(s0, t0) + 1)
        return inter / union

    return seg(a[0], a[1], b[0], b[1]) * seg(a[2], a[3], b[2], b[3])


def union_bbox(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
