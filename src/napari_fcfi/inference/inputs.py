"""What a click needs as input, validated once: the image (:class:`PreparedImage`, its
normalisation range cached, crops normalised on demand), the clicks and the feedback map.

Invalid input raises ``ValueError`` with a message that says what to change.
"""

from __future__ import annotations

import numpy as np

from .lazy import PlaneView
from .maps import Box, RoiMap, bbox
from .normalize import (
    POLICIES,
    intensity_range,
    sample_intensity_range,
    to_model_rgb,
    validate_image,
)
from .resample import ScaledMap

#: a map that is 0 outside a rectangle, stored at full or at network resolution
Map = RoiMap | ScaledMap


class PreparedImage:
    """An image validated once, with its normalisation range cached; crops are normalised
    on demand, so a click costs the crop, not the image.

    ``intensity`` fixes the (low, high) range that maps to (0, 1) instead of computing it
    from this image: the slices of a stack share the range of the whole stack, so that a
    dim end slice stays dim (see :func:`~napari_fcfi.inference.normalize.intensity_range`).
    """

    def __init__(self, image, normalize="auto", intensity=None):
        if normalize not in POLICIES:
            raise ValueError(f"unknown normalize policy {normalize!r}; choose one of {POLICIES}")
        if isinstance(image, PlaneView):
            self._init_lazy(image, normalize, intensity)
            return
        arr = validate_image(image)
        if normalize is None:
            to_model_rgb(arr[:1, :1], None)  # checks the pass-through contract
            self.intensity = None
        elif intensity is not None:
            lo, hi = (float(v) for v in intensity)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"intensity range must be finite, got {intensity!r}")
            self.intensity = (lo, hi)
        else:
            self.intensity = intensity_range(arr, normalize)
        self.raw = arr
        self.normalize = normalize
        self.shape = (int(arr.shape[0]), int(arr.shape[1]))

    def _init_lazy(self, view: PlaneView, normalize, intensity) -> None:
        """A plane read on demand: only its shape and dtype are checked here; every crop
        is validated (NaN included) when it is read, and the intensity range comes from a
        bounded sample when it is not given."""
        if normalize is None:
            raise ValueError("normalize=None needs an in-memory float RGB image, not a view")
        validate_image(np.zeros((1, 1, *view.shape[2:]), view.dtype))  # dtype, channels
        if intensity is None:
            intensity = sample_intensity_range(view, normalize, rgb=view.ndim == 3)
        lo, hi = (float(v) for v in intensity)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"intensity range must be finite, got {intensity!r}")
        self.intensity = (lo, hi)
        self.raw = view
        self.normalize = normalize
        self.shape = (int(view.shape[0]), int(view.shape[1]))

    def crop(self, box: Box) -> np.ndarray:
        """Model RGB float32 (h, w, 3) of the inclusive box."""
        r0, r1, c0, c1 = box
        part = self.raw[r0 : r1 + 1, c0 : c1 + 1]
        return to_model_rgb(part, self.normalize, intensity=self.intensity)

    def grid(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Model RGB float32 (len(rows), len(cols), 3) of the pixels at ``rows`` x ``cols``
        (image coordinates), normalised exactly as :meth:`crop` normalises them."""
        if isinstance(self.raw, PlaneView):
            part = self.raw.take(rows, cols)
        else:
            part = self.raw[np.ix_(rows, cols)]
        return to_model_rgb(part, self.normalize, intensity=self.intensity)


def as_click_list(clicks, shape) -> list[tuple[int, int, bool]]:
    """Validate chronological ``(y, x, is_positive)`` clicks (any iterable, a generator
    included); coordinates round to pixels."""
    if clicks is None:
        raise ValueError("at least one click is needed")
    if not isinstance(clicks, (list, tuple, np.ndarray)):
        try:
            clicks = list(clicks)
        except TypeError:
            raise ValueError(
                f"clicks must be a sequence of (y, x, is_positive), got {type(clicks).__name__}"
            ) from None
    if len(clicks) == 0:
        raise ValueError("at least one click is needed")
    h, w = shape
    out = []
    for i, c in enumerate(clicks):
        try:
            y, x, p = c
            yf, xf = float(y), float(x)
        except (TypeError, ValueError):
            raise ValueError(f"click {i} must be (y, x, is_positive), got {c!r}") from None
        if not (np.isfinite(yf) and np.isfinite(xf)):
            raise ValueError(f"click {i} has a non-finite coordinate ({y}, {x})")
        yi, xi = int(np.floor(yf + 0.5)), int(np.floor(xf + 0.5))
        if not (0 <= yi < h and 0 <= xi < w):
            raise ValueError(f"click {i} at (y={y}, x={x}) is outside the image of shape {h} x {w}")
        out.append((yi, xi, bool(p)))
    return out


def as_feedback(prev, shape) -> Map | None:
    """Validate a feedback map (probabilities in [0, 1] or a binary mask) of image ``shape``."""
    if prev is None:
        return None
    if isinstance(prev, (RoiMap, ScaledMap)):
        if tuple(prev.shape) != tuple(shape):
            raise ValueError(f"feedback of shape {prev.shape} does not match the image {shape}")
        return prev
    arr = np.asarray(prev)
    if arr.shape != tuple(shape):
        raise ValueError(
            f"feedback of shape {arr.shape} does not match the image's (H, W) = {tuple(shape)}"
        )
    if arr.dtype == bool:  # only the bbox of the mask is kept (and converted)
        box = bbox(arr)
        if box is None:
            return RoiMap(arr.shape, 0, 0, np.zeros((0, 0), np.float32))
        r0, r1, c0, c1 = box
        return RoiMap(arr.shape, r0, c0, arr[r0 : r1 + 1, c0 : c1 + 1].astype(np.float32))
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"feedback must be a numeric or bool map, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("feedback contains NaN or infinite values")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            "feedback must be a probability map in [0, 1] or a binary mask, got values in "
            f"[{arr.min()}, {arr.max()}]; pass (labels == id) for one object of a label image"
        )
    return RoiMap.from_array(arr)
