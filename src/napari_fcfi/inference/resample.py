"""Bilinear (``align_corners=True``) resizing read only where it is needed.

The network answers at its input size (e.g. 128 x 128); the answer belongs to a view box
that can be far larger (a feedback mask covering most of an 8000 x 8000 image). Resizing
the answer to the whole box costs 4 bytes per box pixel per map. :class:`ScaledMap` keeps
the network-resolution map and computes box-resolution values only for the rows, columns
or rectangles a caller reads, strip by strip, so a click's result costs the network input,
not the box.

The arithmetic is torch's bilinear ``align_corners=True`` kernel (float32 source positions,
the same weights, the same order of operations), so a :class:`ScaledMap` reads the values
that ``F.interpolate`` would have produced, up to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from .maps import Box

#: box pixels computed at once by the strip-wise reductions (4 MB of float32)
STRIP_PIXELS = 1 << 20


def linear_taps(n_in: int, n_out: int):
    """Bilinear ``align_corners=True`` resizing of one axis from ``n_in`` to ``n_out``
    samples: for each output sample the two source indices and their weights, computed in
    float32 as torch computes them."""
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0.0)
    src = scale * np.arange(n_out, dtype=np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    l0 = (np.float32(1.0) - l1).astype(np.float32)
    return i0, i1, l0, l1


def bilinear(grid: np.ndarray, taps_y, taps_x) -> np.ndarray:
    """Resize a (R, C[, k]) array sampled only at the taps' rows and columns (``taps_*``
    hold positions into ``grid``) with the taps' weights."""
    y0, y1, ly0, ly1 = taps_y
    x0, x1, lx0, lx1 = taps_x
    extra = (None,) * (grid.ndim - 2)
    wx0, wx1 = lx0[(None, slice(None)) + extra], lx1[(None, slice(None)) + extra]
    wy0, wy1 = ly0[(slice(None), None) + extra], ly1[(slice(None), None) + extra]
    top, bottom = grid[y0], grid[y1]
    out = wy0 * (wx0 * top[:, x0] + wx1 * top[:, x1])
    out += wy1 * (wx0 * bottom[:, x0] + wx1 * bottom[:, x1])
    return out.astype(np.float32, copy=False)


def _select(taps, index):
    return tuple(t[index] for t in taps)


def _lines_above(nodes: np.ndarray, taps, thresh: float) -> np.ndarray:
    """For resampled lines ``l0 * nodes[i0] + l1 * nodes[i1]`` (``taps``), whether each
    has a value ``> thresh``, without computing them: on the segment between two node lines
    ``a`` and ``b`` the values are ``(1 - t) a + t b``, above ``thresh`` for ``t`` below a
    limit where only ``a`` is above it, beyond a limit where only ``b`` is, and everywhere
    where both are."""
    i0, i1, _, t = taps
    a, b = nodes[:-1], nodes[1:]
    above_a, above_b = a > thresh, b > thresh
    both = (above_a & above_b).any(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (a - thresh) / (a - b)  # where the blend meets thresh
    low = np.where(above_a & ~above_b, cross, -np.inf).max(axis=1, initial=-np.inf)
    high = np.where(above_b & ~above_a, cross, np.inf).min(axis=1, initial=np.inf)
    out = np.zeros(i0.size, bool)
    on_node = i0 == i1  # the last node line itself
    if on_node.any():
        out[on_node] = (nodes[i0[on_node]] > thresh).any(axis=1)
    seg = ~on_node
    k, tk = i0[seg], t[seg]
    out[seg] = both[k] | (tk < low[k]) | (tk > high[k])
    return out


class ScaledMap:
    """A float32 (H, W) map that is 0 outside ``box`` and, inside it, the bilinear
    (``align_corners=True``) enlargement of ``small`` to the box's size.

    It answers the reads of :class:`~napari_fcfi.inference.maps.RoiMap` (``slices``,
    ``region``, ``take``, ``bbox_above``, ``above``, ``max``, ``full``) computing only what
    is read; the reductions go strip by strip (:data:`STRIP_PIXELS` box pixels at a time).
    ``data`` materialises the whole box: avoid it on large boxes.
    """

    def __init__(self, shape, box: Box, small: np.ndarray):
        small = np.array(small, dtype=np.float32, copy=True)
        if small.ndim != 2 or small.size == 0:
            raise ValueError(f"ScaledMap needs a non-empty 2-D map, got shape {small.shape}")
        r0, r1, c0, c1 = (int(v) for v in box)
        h, w = r1 - r0 + 1, c1 - c0 + 1
        H, W = (int(s) for s in shape)
        if not (0 <= r0 <= r1 < H and 0 <= c0 <= c1 < W):
            raise ValueError(f"box {box} does not lie inside the map of shape {(H, W)}")
        if h < small.shape[0] or w < small.shape[1]:
            raise ValueError(
                f"ScaledMap only enlarges: box {h} x {w} is smaller than the map {small.shape}"
            )
        small.flags.writeable = False
        self.shape = (H, W)
        self.y0, self.x0 = r0, c0
        self.box_shape = (h, w)
        self.small = small
        self._ty = linear_taps(small.shape[0], h)
        self._tx = linear_taps(small.shape[1], w)

    # ------------------------------------------------------------------ geometry
    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.box_shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def _rows(self, c: int = 0, d: int | None = None) -> np.ndarray:
        """``small`` enlarged along x only, for box columns ``c:d``: (small rows, d - c).
        Every box row is a weighted sum of two of its rows, in torch's order of operations.
        Not kept between calls (a map is held per undo step)."""
        x0, x1, lx0, lx1 = (t[c:d] for t in self._tx)
        return (lx0 * self.small[:, x0] + lx1 * self.small[:, x1]).astype(np.float32, copy=False)

    def _block(self, rows: np.ndarray, a: int, b: int) -> np.ndarray:
        """Box-relative rows ``a:b`` at box resolution, from ``rows`` = :meth:`_rows`."""
        y0, y1, ly0, ly1 = (t[a:b] for t in self._ty)
        out = ly0[:, None] * rows[y0]
        out += ly1[:, None] * rows[y1]
        return out

    def _strips(self):
        """Box-relative row ranges of about :data:`STRIP_PIXELS` pixels each."""
        h, w = self.box_shape
        step = max(1, STRIP_PIXELS // max(w, 1))
        for a in range(0, h, step):
            yield a, min(h, a + step)

    # ------------------------------------------------------------------ reads
    @property
    def data(self) -> np.ndarray:
        """The whole box at full resolution (read-only; 4 bytes per box pixel)."""
        h, w = self.box_shape
        out = np.empty((h, w), np.float32)
        rows = self._rows()
        for a, b in self._strips():
            out[a:b] = self._block(rows, a, b)
        out.flags.writeable = False
        return out

    def full(self) -> np.ndarray:
        """The whole (H, W) float32 map (zeros outside the box)."""
        out = np.zeros(self.shape, np.float32)
        sy, sx = self.slices
        rows = self._rows()
        for a, b in self._strips():
            out[sy.start + a : sy.start + b, sx] = self._block(rows, a, b)
        return out

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Values in rows ``y0:y1`` and columns ``x0:x1`` (end-exclusive), 0 outside the
        box."""
        out = np.zeros((y1 - y0, x1 - x0), np.float32)
        h, w = self.box_shape
        ty0, ty1 = max(y0, self.y0), min(y1, self.y0 + h)
        tx0, tx1 = max(x0, self.x0), min(x1, self.x0 + w)
        if ty1 > ty0 and tx1 > tx0:
            rows = self._rows(tx0 - self.x0, tx1 - self.x0)
            out[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0] = self._block(
                rows, ty0 - self.y0, ty1 - self.y0
            )
        return out

    def take(self, rows, cols) -> np.ndarray:
        """Values at the grid ``rows`` x ``cols`` (full-map coordinates), 0 outside the box."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        out = np.zeros((rows.size, cols.size), np.float32)
        h, w = self.box_shape
        ry, cx = rows - self.y0, cols - self.x0
        in_y = (ry >= 0) & (ry < h)
        in_x = (cx >= 0) & (cx < w)
        if in_y.any() and in_x.any():
            vals = bilinear(self.small, _select(self._ty, ry[in_y]), _select(self._tx, cx[in_x]))
            out[np.ix_(in_y, in_x)] = vals
        return out

    def above(self, thresh: float) -> np.ndarray:
        """Bool (box height, box width): the box's pixels ``> thresh`` (1 byte per pixel)."""
        h, w = self.box_shape
        out = np.empty((h, w), bool)
        rows = self._rows()
        for a, b in self._strips():
            np.greater(self._block(rows, a, b), thresh, out=out[a:b])
        return out

    def bbox_above(self, thresh: float) -> Box | None:
        """Inclusive bbox (full-map coordinates) of the pixels ``> thresh``, or None.

        Computed without enlarging the box: between two stored rows a box row is a linear
        blend of them, so whether some pixel of it exceeds ``thresh`` depends only on the
        blend weight (likewise for columns). Exact up to float32 rounding of pixels within
        rounding distance of ``thresh``."""
        if thresh < 0:
            raise ValueError("thresh must be >= 0 (the map is 0 outside its box)")
        if not (self.small > thresh).any():
            return None  # every value is a convex combination of the stored ones
        rows = _lines_above(self._rows(), self._ty, thresh)
        x0, x1, lx0, lx1 = self._tx
        y0, y1, ly0, ly1 = self._ty
        along_y = ly0[:, None] * self.small[y0] + ly1[:, None] * self.small[y1]  # (h, nw)
        cols = _lines_above(along_y.T, self._tx, thresh)
        ri, ci = np.flatnonzero(rows), np.flatnonzero(cols)
        if ri.size == 0 or ci.size == 0:
            return None
        y, x = self.y0, self.x0
        return int(ri[0]) + y, int(ri[-1]) + y, int(ci[0]) + x, int(ci[-1]) + x

    def any_above(self, thresh: float = 0.0) -> bool:
        """Whether some pixel is ``> thresh`` (``thresh >= 0``)."""
        if thresh == 0.0 and float(self.small.min()) >= 0.0:
            # enlarging gives every stored value a positive weight in some pixel
            return bool((self.small > 0).any())
        return self.bbox_above(thresh) is not None

    def max(self) -> float:
        rows = self._rows()
        return max(float(self._block(rows, a, b).max()) for a, b in self._strips())
