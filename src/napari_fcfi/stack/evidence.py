"""Is the object still there? The image evidence that ends a propagation.

Fed the previous slice's mask, the network keeps drawing an object of the same shape on the
slices past its end, where only a blurred tail of it is left. What ends the object is the
image, not the mask, so each propagated mask is checked against the image:

``"foreground"`` (fluorescence and other images where objects are brighter, or darker,
than the background)
    The stack's foreground level is Otsu's threshold of a bounded sample of its slices. The
    object's *evidence* on a slice is the number of its mask's pixels on the object's side
    of that level. The object is present while the evidence is at least ``min_fraction`` of
    the start slice's evidence and at least ``min_pixels`` pixels (never more than a fifth
    of the start slice's evidence, so that small objects are not cut short). Used when at
    least half of the start mask is on one side of the level.
``"contrast"`` (objects that do not stand out from a global level)
    The object's mean intensity minus that of a ring around it
    (:func:`~napari_fcfi.masks.object_contrast`), relative to the start slice's; present
    while it is at least ``contrast_fraction``.
``"off"``
    The start slice shows no intensity difference at all: only the mask and IoU rules apply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..inference.normalize import spaced_indices
from ..masks import object_contrast

__all__ = ["Evidence"]

MAX_SAMPLE_SLICES = 32
MAX_SAMPLE_PIXELS = 1 << 20


def _grey(image) -> np.ndarray:
    arr = np.asarray(getattr(image, "raw", image))
    return arr.mean(axis=-1) if arr.ndim == 3 else arr


def foreground_level(get_slice: Callable[[int], np.ndarray], n_slices: int) -> float:
    """Otsu's threshold of up to 32 evenly spaced slices, subsampled to about 1M pixels."""
    from skimage.filters import threshold_otsu

    idx = spaced_indices(n_slices, MAX_SAMPLE_SLICES)
    parts = []
    for i in idx:
        g = _grey(get_slice(int(i))).reshape(-1)
        step = max(1, g.size * len(idx) // MAX_SAMPLE_PIXELS)
        parts.append(g[::step])
    sample = np.concatenate(parts).astype(np.float64)
    if sample.min() == sample.max():
        return float(sample[0])
    return float(threshold_otsu(sample))


class Evidence:
    """The evidence rule of one propagation, fixed on its start slice (module docstring)."""

    def __init__(
        self,
        get_slice: Callable[[int], np.ndarray],
        n_slices: int,
        start_index: int,
        start_mask: np.ndarray,
        *,
        min_fraction: float = 0.03,
        min_pixels: int = 16,
        contrast_fraction: float = 0.2,
    ):
        self.min_fraction = float(min_fraction)
        self.contrast_fraction = float(contrast_fraction)
        start = _grey(get_slice(start_index))
        start_mask = np.asarray(start_mask, dtype=bool)
        self.level = foreground_level(get_slice, n_slices)
        above = start[start_mask] > self.level
        self.polarity = 1 if above.mean() >= 0.5 else -1
        side = above if self.polarity > 0 else (start[start_mask] < self.level)
        self.base = float(np.count_nonzero(side))
        if side.mean() >= 0.5:
            self.mode = "foreground"
            self.min_pixels = min(float(min_pixels), 0.2 * self.base)
        else:
            self.base = object_contrast(start, start_mask)
            self.mode = "contrast" if abs(self.base) > 1e-6 else "off"

    def measure(self, image, mask: np.ndarray) -> float:
        """The object's evidence on ``image`` relative to the start slice (1.0 = as much);
        ``nan`` when the rule is off."""
        if self.mode == "off":
            return float("nan")
        grey = _grey(image)
        if self.mode == "contrast":
            return object_contrast(grey, mask) / self.base
        values = grey[np.asarray(mask, dtype=bool)]
        side = values > self.level if self.polarity > 0 else values < self.level
        return float(np.count_nonzero(side)) / self.base

    def present(self, relative: float) -> bool:
        """Whether evidence ``relative`` (from :meth:`measure`) says the object is there."""
        if relative != relative:  # rule off
            return True
        if self.mode == "contrast":
            return relative >= self.contrast_fraction
        return relative >= self.min_fraction and relative * self.base >= self.min_pixels
