"""One plane of a large or lazy image, read only where the engine looks.

:class:`PlaneView` stands for the 2-D plane ``data[key]`` (H, W) or (H, W, C) of a numpy,
dask or zarr array (napari's multiscale layers: their full-resolution level) without
reading it. Slicing it reads just that window; :meth:`take` reads a sparse grid of pixels.
:class:`~napari_fcfi.inference.inputs.PreparedImage` accepts it, so a click costs the
crop that the network sees, whatever the size of the image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PlaneView"]


class PlaneView:
    """The plane ``data[key]`` of an array-like, read on demand.

    ``rgb``: the last axis of ``data`` is a colour channel (kept in the plane).
    """

    def __init__(self, data, key: tuple = (), rgb: bool = False):
        self.data = data
        self.key = tuple(int(k) for k in key)
        plane_ndim = 3 if rgb else 2
        full = tuple(int(n) for n in data.shape)
        if len(full) != len(self.key) + plane_ndim:
            raise ValueError(
                f"key {self.key} does not select a plane of an array of shape {full} "
                f"({'with' if rgb else 'without'} a channel axis)"
            )
        for k, n in zip(self.key, full):
            if not 0 <= k < n:
                raise ValueError(f"plane index {self.key} is outside the shape {full}")
        self.shape = full[len(self.key) :]
        self.ndim = plane_ndim
        self.dtype = np.dtype(data.dtype)

    def __getitem__(self, index) -> np.ndarray:
        """``plane[index]`` for basic indices (slices, ints), read from the array."""
        if not isinstance(index, tuple):
            index = (index,)
        return np.asarray(self.data[self.key + index])

    def take(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The pixels at ``rows`` x ``cols`` (a sparse grid), reading one row strip at a
        time so that a grid over a huge plane never loads the plane."""
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        if isinstance(self.data, np.ndarray):
            return self.data[self.key][np.ix_(rows, cols)]
        c0, c1 = int(cols.min()), int(cols.max()) + 1
        out = [np.asarray(self.data[self.key + (int(r), slice(c0, c1))])[cols - c0] for r in rows]
        return np.stack(out, axis=0)

    def __array__(self, dtype=None, copy=None):
        """The whole plane (only where a caller really needs all of it)."""
        arr = np.asarray(self.data[self.key])
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"PlaneView({type(self.data).__name__}, key={self.key}, shape={self.shape})"
