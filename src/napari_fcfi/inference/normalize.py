"""Turn any microscopy image into the network's RGB float input in [0, 1].

Policies (``normalize=`` of :class:`~napari_fcfi.inference.Predictor`):

``"auto"`` / ``"percentile"``
    Per-image percentile scaling: the 0.5th and 99.8th percentiles over all channels map
    to 0 and 1, values are clipped. This is what microscopy data needs (dim 12/16-bit
    fluorescence, arbitrary offsets) and is also what the built-in model was trained with.
``"minmax"``
    Image minimum -> 0, maximum -> 1.
``"dtype"``
    Divide by the dtype's range (uint8 /255, uint16 /65535); floats are clipped to [0, 1].
``None``
    Pass-through: the input must already be a float (H, W, 3) image in [0, 1]. The
    conformance tests use this.

Channels (last axis, only for 3-D input with at most 4 channels; a 2-D array is grey):

* 1 (or 2-D input): grey, replicated to three channels;
* 2: false-colour composite R = channel 0, G = channel 1, B = 0;
* 3: RGB as is;
* 4: RGBA, the alpha channel is dropped.

Anything else (NaN/inf values, empty images, 4-D arrays, more than 4 channels) raises a
``ValueError`` that says what to change.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("auto", "percentile", "minmax", "dtype", None)
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.8
# estimate percentiles on at most this many samples (a strided subsample), so that an
# 8000x8000 image normalises in milliseconds
_MAX_SAMPLES = 1 << 20


def validate_image(image) -> np.ndarray:
    """Check shape and values of a 2-D (H, W) or (H, W, C) image; returns it as an ndarray."""
    arr = np.asarray(image)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"image must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError("image must be real-valued, got a complex array")
    if arr.ndim == 3 and arr.shape[-1] > 4:
        raise ValueError(
            f"image of shape {arr.shape}: expected (H, W) or (H, W, C) with C <= 4 channels "
            "last; for a stack, pass one 2-D slice at a time"
        )
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"image must be 2-D (H, W) or (H, W, C), got {arr.ndim} axes {arr.shape}; "
            "for a stack, pass one 2-D slice at a time"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0 or (arr.ndim == 3 and arr.shape[2] == 0):
        raise ValueError(f"image is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values; replace them before segmenting")
    return arr


def _to_three_channels(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    c = arr.shape[-1]
    if c == 1:
        return np.repeat(arr, 3, axis=-1)
    if c == 2:
        return np.concatenate([arr, np.zeros_like(arr[..., :1])], axis=-1)
    return arr[..., :3]


def _sample(arr: np.ndarray) -> np.ndarray:
    flat = arr.reshape(-1)
    if flat.size > _MAX_SAMPLES:
        flat = flat[:: flat.size // _MAX_SAMPLES + 1]
    return flat


def intensity_range(image, policy="auto") -> tuple[float, float]:
    """(low, high) that ``policy`` maps to (0, 1) for this image (used to share one
    scaling across the slices of a stack or the crops of one image)."""
    arr = validate_image(image)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == bool:
        return 0.0, 1.0
    if policy in ("auto", "percentile"):
        lo, hi = np.percentile(_sample(arr).astype(np.float64), [LOW_PERCENTILE, HIGH_PERCENTILE])
        if hi <= lo:  # a (nearly) constant image: fall back to its full range
            lo, hi = float(arr.min()), float(arr.max())
    elif policy == "minmax":
        lo, hi = float(arr.min()), float(arr.max())
    elif policy == "dtype":
        if np.issubdtype(arr.dtype, np.integer):
            info = np.iinfo(arr.dtype)
            lo, hi = (float(info.min), float(info.max)) if info.min < 0 else (0.0, float(info.max))
        else:
            lo, hi = 0.0, 1.0
    else:
        raise ValueError(f"unknown normalize policy {policy!r}; choose one of {POLICIES}")
    return float(lo), float(hi)


def spaced_indices(n: int, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced indices of ``range(n)``, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def sample_intensity_range(
    array, policy="auto", rgb: bool = False, max_planes: int = 8, tile: int = 256
) -> tuple[float, float]:
    """:func:`intensity_range` of a whole image or stack, from a bounded sample.

    ``array`` is anything that slices like an array (numpy, dask, zarr): (..., H, W), or
    (..., H, W, C) with ``rgb``. At most ``max_planes`` evenly spaced planes are read, and
    of each plane larger than 4 x 4 tiles only a 4 x 4 grid of ``tile`` x ``tile`` windows,
    so the cost is bounded whatever the image size and nothing else is loaded."""
    shape = tuple(int(n) for n in array.shape)
    plane_ndim = 3 if rgb else 2
    if len(shape) < plane_ndim:
        raise ValueError(f"image of shape {shape} has fewer than {plane_ndim} axes")
    lead = shape[: len(shape) - plane_ndim]
    h, w = shape[len(lead)], shape[len(lead) + 1]
    planes = [()]
    for n in lead:
        idx = spaced_indices(n, max_planes)
        planes = [p + (int(i),) for p in planes for i in idx][: max(max_planes, 1)]
    if h <= 4 * tile and w <= 4 * tile:
        windows = [(slice(None), slice(None))]
    else:
        ys = np.linspace(0, max(h - tile, 0), 4).round().astype(int)
        xs = np.linspace(0, max(w - tile, 0), 4).round().astype(int)
        windows = [(slice(y, y + tile), slice(x, x + tile)) for y in ys for x in xs]
    parts = []
    for p in planes:
        for win in windows:
            part = np.asarray(array[p + win])
            parts.append(part.reshape(-1, part.shape[-1]) if rgb else part.reshape(-1, 1))
    sample = np.concatenate(parts, axis=0)
    return intensity_range(sample.reshape(1, -1) if not rgb else sample[None], policy)


def to_model_rgb(image, policy="auto", intensity=None) -> np.ndarray:
    """Convert ``image`` to float32 (H, W, 3) in [0, 1] with ``policy``.

    ``intensity`` optionally fixes the (low, high) range (see :func:`intensity_range`).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown normalize policy {policy!r}; choose one of {POLICIES}")
    arr = validate_image(image)
    if policy is None:
        if arr.ndim != 3 or arr.shape[-1] != 3 or not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(
                "normalize=None expects a float (H, W, 3) RGB image in [0, 1]; "
                f"got {arr.dtype} {arr.shape}. Use normalize='auto' for raw microscopy data."
            )
        return np.ascontiguousarray(arr, dtype=np.float32)
    lo, hi = intensity if intensity is not None else intensity_range(arr, policy)
    # 8-byte inputs (float64, int64) may exceed float32's range: scale them in float64
    work = np.float64 if arr.dtype.itemsize >= 8 else np.float32
    rgb = _to_three_channels(arr.astype(work, copy=False))
    lo, hi = float(lo), float(hi)
    if not np.isfinite(hi - lo):  # a range wider than float64's maximum: halve everything
        rgb, lo, hi = rgb * 0.5, lo * 0.5, hi * 0.5
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    out = (rgb - work(lo)) * work(scale)
    np.clip(out, 0.0, 1.0, out=out)
    return np.ascontiguousarray(out, dtype=np.float32)
