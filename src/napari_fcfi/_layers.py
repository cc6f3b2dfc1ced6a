"""napari layer helpers of the FCFI widget: the clicks layer, the output labels layer, slice
geometry and history-aware label writes.

Everything here runs on the GUI thread (napari layers are not thread-safe). The only
writer of label pixels is :func:`write_object`, which goes through
:meth:`napari.layers.Labels.data_setitem` so that every write lands in napari's own undo
history (Ctrl+Z in napari undoes it).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .annotation.planes import compose_object

CLICKS_LAYER_NAME = "FCFI clicks"
LABELS_LAYER_NAME = "FCFI labels"
POSITIVE_COLOR = "#00e000"
NEGATIVE_COLOR = "#ff2020"

SliceKey = tuple[int, ...]


def unwrap(obj):
    """The object behind napari's ``PublicOnlyProxy`` (plugin widgets get proxied viewers and
    layers; identity checks need the real layer)."""
    return getattr(obj, "__wrapped__", obj)


def image_data(image_layer):
    """The full-resolution array of an image layer (level 0 of a multiscale layer)."""
    data = image_layer.data
    return data[0] if getattr(image_layer, "multiscale", False) else data


def spatial_shape(image_layer) -> tuple[int, ...]:
    """Shape of the image without its channel axis: ``(*stack_axes, Y, X)``."""
    shape = tuple(int(s) for s in image_data(image_layer).shape)
    if getattr(image_layer, "rgb", False):
        shape = shape[:-1]
    if len(shape) < 2:
        raise ValueError(f"image layer {image_layer.name!r} is not at least 2-D (shape {shape})")
    return shape


def image_slice(image_layer, key: SliceKey) -> np.ndarray:
    """The 2-D (H, W) or (H, W, C) plane ``key`` of an image layer as an ndarray.

    ``key`` indexes the leading (stack) axes. Reading a lazy (dask/zarr) array computes
    only that plane. Safe to call from a worker thread on the array itself (see
    :func:`slice_reader`).
    """
    return slice_reader(image_data(image_layer))(key)


def slice_reader(data):
    """A function ``key -> np.ndarray`` reading one plane of ``data`` (no layer access)."""

    def read(key: SliceKey) -> np.ndarray:
        return np.asarray(data[tuple(key)])

    return read


def plane_reader(image_layer):
    """A function ``key -> PreparedImage`` for the planes of an image layer, for the engine.

    Nothing is read up front: each plane is a
    :class:`~napari_fcfi.inference.lazy.PlaneView` (numpy, dask, zarr, or the full
    resolution of a multiscale layer), so a click reads only the crop the network sees.
    The intensity range is computed once for the whole image or stack, from a bounded
    sample, on the first read; every plane shares it (a dim slice stays dim). Safe to call
    from a worker thread (it holds the array, not the layer)."""
    import threading

    from .inference.inputs import PreparedImage
    from .inference.lazy import PlaneView
    from .inference.normalize import sample_intensity_range

    data = image_data(image_layer)
    rgb = bool(getattr(image_layer, "rgb", False))
    lock = threading.Lock()
    cache: dict = {}

    def read(key: SliceKey) -> PreparedImage:
        with lock:
            if "intensity" not in cache:
                cache["intensity"] = sample_intensity_range(data, "auto", rgb=rgb)
        view = PlaneView(data, tuple(key), rgb=rgb)
        return PreparedImage(view, "auto", intensity=cache["intensity"])

    return read


def make_clicks_layer(image_layer, ndim: int | None = None):
    """A new Points layer "FCFI clicks" on the grid of ``image_layer``.

    Each point has the boolean feature ``positive`` (green: positive, red: negative);
    ``feature_defaults['positive']`` is the polarity of the next added point.
    """
    from napari.layers import Points

    ndim = len(spatial_shape(image_layer)) if ndim is None else ndim
    layer = Points(
        np.empty((0, ndim)),
        ndim=ndim,
        name=CLICKS_LAYER_NAME,
        features={"positive": np.empty(0, dtype=bool)},
        feature_defaults={"positive": True},
        face_color="positive",
        face_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR},
        border_color="white",
        border_width=0.1,
        size=_default_point_size(image_layer),
        scale=image_layer.scale[-ndim:],
        translate=image_layer.translate[-ndim:],
        out_of_slice_display=False,
    )
    return layer


def _default_point_size(image_layer) -> float:
    shape = spatial_shape(image_layer)
    return float(max(4.0, min(shape[-2:]) / 60))


def make_labels_layer(image_layer, dtype=np.uint32):
    """A new empty Labels layer "FCFI labels" sized to the image's stack and spatial axes."""
    from napari.layers import Labels

    shape = spatial_shape(image_layer)
    ndim = len(shape)
    return Labels(
        np.zeros(shape, dtype=dtype),
        name=LABELS_LAYER_NAME,
        scale=image_layer.scale[-ndim:],
        translate=image_layer.translate[-ndim:],
    )


def check_labels_match(image_layer, labels_layer) -> None:
    """Raise ``ValueError`` unless ``labels_layer`` has the image's (stack, Y, X) shape."""
    want = spatial_shape(image_layer)
    got = tuple(int(s) for s in labels_layer.data.shape)
    if got != want:
        raise ValueError(
            f"labels layer {labels_layer.name!r} has shape {got} but image "
            f"{image_layer.name!r} needs {want}; pick another labels layer or create a new one"
        )


def read_plane(labels_layer, key: SliceKey) -> np.ndarray:
    """A copy of the 2-D label plane ``key``."""
    return np.array(labels_layer.data[tuple(key)], copy=True)


def read_object(labels_layer, key: SliceKey, object_id: int) -> np.ndarray:
    """Boolean mask of ``object_id`` on plane ``key``."""
    return np.asarray(labels_layer.data[tuple(key)]) == object_id


def next_free_id(labels_layer) -> int:
    """One more than the largest label in the layer."""
    data = labels_layer.data
    if data.size == 0:
        return 1
    return int(np.max(data)) + 1


@contextmanager
def history_group(labels_layer):
    """Group all writes inside the context into one napari undo step."""
    with labels_layer.block_history():
        yield


def set_plane(labels_layer, key: SliceKey, new_plane: np.ndarray) -> int:
    """Make plane ``key`` equal ``new_plane`` through napari's history; returns the number of
    changed pixels (nothing is recorded when nothing changes)."""
    h, w = new_plane.shape[-2:]
    return set_region(labels_layer, key, (0, h, 0, w), new_plane)


def read_region(labels_layer, key: SliceKey, rect) -> np.ndarray:
    """A copy of the rectangle ``rect`` ``(y0, y1, x0, x1)`` of label plane ``key``."""
    y0, y1, x0, x1 = rect
    return np.array(labels_layer.data[tuple(key) + (slice(y0, y1), slice(x0, x1))], copy=True)


def set_region(labels_layer, key: SliceKey, rect, values: np.ndarray) -> int:
    """Make the rectangle ``rect`` of plane ``key`` equal ``values`` through napari's
    history, touching only its changed pixels; returns their number."""
    y0, y1, x0, x1 = rect
    old = np.asarray(labels_layer.data[tuple(key) + (slice(y0, y1), slice(x0, x1))])
    if old.shape != values.shape:
        raise ValueError(f"region shape {values.shape} does not match {old.shape}")
    diff = old != values
    if not diff.any():
        return 0
    yy, xx = np.nonzero(diff)
    indices = tuple(np.full(yy.shape, k, dtype=np.intp) for k in key) + (yy + y0, xx + x0)
    labels_layer.data_setitem(indices, values[diff])
    return int(yy.size)


def write_object(
    labels_layer, key: SliceKey, mask: np.ndarray, object_id: int, allow_overwrite: bool
) -> np.ndarray:
    """Write ``object_id`` = ``mask`` on plane ``key`` as one napari undo step.

    Returns the object's resulting mask on that plane (``mask`` minus protected pixels).
    """
    plane = np.asarray(labels_layer.data[tuple(key)])
    new = compose_object(plane, mask, object_id, allow_overwrite)
    with history_group(labels_layer):
        set_plane(labels_layer, key, new)
    return new == object_id
