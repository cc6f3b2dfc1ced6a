"""Batch refinement of existing label images with an FCFI network.

Every object of every 2-D slice is refined independently, the way a user would correct
it by hand with FCFI: the object's current mask is the *feedback* (the network's previous
mask, gate 1) and one automatic positive click is placed at the object's interior point
(the maximum of its Euclidean distance transform). The network then tightens the mask to
the object's boundary.

Rules (all documented here because they define what the result is):

**Extra clicks** (``extra_clicks``, default 1). After a prediction the refined mask ``R``
is compared with the current mask ``M`` inside the object's window. The disagreement
regions are ``M & ~R`` (missed) and ``R & ~M`` (added). The point deepest inside either
region (maximum distance transform, the usual "next click" of interactive-segmentation
benchmarks, with the window border counting as an edge) is where they disagree most. If
that depth is at least ``click_distance`` pixels -- i.e. the disagreement is a blob at
least ``2 * click_distance`` px thick, not a boundary correction -- the current mask is
trusted there: a positive click is added if the refinement missed the region, a negative
one if it added it, and the object is predicted again with its previous probability as
the feedback. Boundary corrections thinner than that are left to the network. At most
``extra_clicks`` such clicks are added per object (0 disables them).

**Margin.** A pixel leaves or joins an object only where the probability is at least
``margin`` past the predictor's threshold: the refined mask is
``p > t + margin`` plus the current mask's pixels with ``p > t - margin``. Where the
network is unsure, the current mask is kept (0 disables this). ``margin`` lies in
[0, 1]; like every numeric option it is checked up front, and NaN is refused.

**Connected support.** Components of the refined mask that touch neither the current
mask nor the clicks are dropped (a refinement must not spawn a far-away fragment).

**Failure fallback.** If the refined mask is empty or its IoU with the current mask is
below ``min_iou``, refinement is considered to have failed for that object and its
current mask is kept (status ``"failed"`` in the report).

**Small objects.** Objects with fewer than ``min_size`` pixels are kept as they are
(status ``"small"``); their pixels are never taken by another object.

**Ownership.** Label ids are kept. Each pixel goes to the refined object with the highest
probability among those whose refined mask covers it; on a tie the object that owned the
pixel before keeps it. Hence an object only takes a pixel owned by another object where
its probability is higher than the owner's; kept objects (small or failed) are never
overwritten. Pixels that no object claims any more become background (0).

The public entry points are :func:`refine_labels` (whole arrays, numpy or dask),
:func:`iter_refine` (a generator of finished slices, used by the widget) and
:func:`refine_slice` (one 2-D slice, one dask task in the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from ..masks import deepest_point, interior_point, iou
from .options import RefineOptions

__all__ = [
    "ObjectReport",
    "RefineCancelled",
    "REFINE_PREDICTOR",
    "check_out_dtype",
    "default_predictor",
    "iter_refine",
    "refine_labels",
    "refine_slice",
    "slice_indices",
    "split_channels",
]

# objects per predict_many call (cancellation is polled between calls)
_CHUNK = 64


@dataclass
class ObjectReport:
    """What happened to one object of one slice.

    ``slice`` is the index of the 2-D slice in the leading axes (``()`` for a 2-D input),
    ``label`` the object's id, ``status`` one of ``"refined"``, ``"small"`` (below
    ``min_size``, kept), ``"failed"`` (refinement lost the object, kept) or ``"lost"`` (its
    refined pixels all went to neighbours with higher probability). ``iou`` is the IoU
    between the old and the new mask, ``changed_pixels`` the size of their symmetric
    difference and ``clicks`` the number of automatic clicks used.
    """

    slice: tuple[int, ...]
    label: int
    status: str
    area_old: int
    area_new: int
    iou: float
    changed_pixels: int
    clicks: int

    def as_dict(self) -> dict:
        d = asdict(self)
        d["slice"] = list(self.slice)
        return d


class RefineCancelled(Exception):
    """Raised by :func:`refine_labels` when ``cancel()`` returned True.

    ``completed`` lists the slice indices that were finished (and written to ``out``)
    before the cancellation, ``report`` their object reports.
    """

    def __init__(self, completed, report):
        super().__init__(f"refinement cancelled after {len(completed)} slice(s)")
        self.completed = completed
        self.report = report


# --------------------------------------------------------------------------- validation


def split_channels(image_shape: tuple[int, ...], labels_shape: tuple[int, ...]) -> bool:
    """Whether the image has a trailing channel axis relative to the labels.

    The image must have the labels' shape, or the labels' shape plus a last axis of at
    most 4 channels. Raises ``ValueError`` otherwise.
    """
    image_shape, labels_shape = tuple(image_shape), tuple(labels_shape)
    if len(labels_shape) < 2:
        raise ValueError(f"labels must have at least 2 axes (..., Y, X), got shape {labels_shape}")
    if image_shape == labels_shape:
        return False
    if (
        len(image_shape) == len(labels_shape) + 1
        and image_shape[:-1] == labels_shape
        and image_shape[-1] <= 4
    ):
        return True
    raise ValueError(
        f"image shape {image_shape} does not match labels shape {labels_shape}; expected the "
        "same shape, or the labels' shape plus a last channel axis of at most 4"
    )


def check_labels_dtype(dtype) -> None:
    """Labels must be an unsigned or signed integer array (ids >= 0)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"labels must be an integer array of object ids, got dtype {dtype}")


def _id_range(labels) -> tuple[int, int]:
    """Smallest and largest id of a label array, read slice by slice if not in memory."""
    if isinstance(labels, np.ndarray):
        return (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    low, high = 0, 0
    for index in slice_indices(labels.shape):
        part = np.asarray(labels[index])
        if part.size:
            low, high = min(low, int(part.min())), max(high, int(part.max()))
    return low, high


def check_out_dtype(labels, out_dtype) -> None:
    """ValueError unless an array of ``out_dtype`` holds every id of ``labels`` exactly.

    Any dtype ``labels.dtype`` casts to safely is accepted; a narrower integer dtype is
    accepted only if the ids present fit in it (the labels are then read once).
    """
    src, dst = np.dtype(labels.dtype), np.dtype(out_dtype)
    if np.can_cast(src, dst, casting="safe"):
        return
    if np.issubdtype(dst, np.integer):
        low, high = _id_range(labels)
        info = np.iinfo(dst)
        if info.min <= low and high <= info.max:
            return
        raise ValueError(
            f"out has dtype {dst}, which cannot hold the label ids (up to {high}); use a "
            f"dtype that holds {src} values, e.g. {src}"
        )
    raise ValueError(
        f"out has dtype {dst}, which cannot hold every {src} label id exactly; use an "
        f"integer dtype at least as wide, e.g. {src}"
    )


def slice_indices(labels_shape: tuple[int, ...], slices=None) -> list[tuple[int, ...]]:
    """Indices of the 2-D slices of an array of shape ``(..., Y, X)``.

    ``slices`` (a Python ``slice`` or an iterable of ints) restricts the first axis; it
    must be ``None`` for a 2-D array.
    """
    lead = tuple(labels_shape[:-2])
    if not lead:
        if slices is not None:
            raise ValueError("slices= is only meaningful for a stack (..., Y, X)")
        return [()]
    first = range(lead[0])
    if slices is not None:
        if isinstance(slices, slice):
            first = first[slices]
        else:
            chosen = [int(i) for i in slices]
            for i in chosen:
                if not -lead[0] <= i < lead[0]:
                    raise ValueError(f"slice index {i} out of range for {lead[0]} slices")
            first = [i % lead[0] for i in chosen]
    rest = list(np.ndindex(*lead[1:]))
    return [(int(i), *r) for i in first for r in rest]


# ------------------------------------------------------------------------ per-object work


def _disagreement_click(old: np.ndarray, new: np.ndarray, min_depth: float):
    """The extra-click rule (module docstring): ``(y, x, positive)`` or None."""
    best = None
    for region, positive in ((old & ~new, True), (new & ~old, False)):
        found = deepest_point(region)
        if found is not None and found[0] >= min_depth and (best is None or found[0] > best[0]):
            best = (*found, positive)
    return None if best is None else best[1:]


def _union(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[slice, slice]:
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b))


class _Obj:
    """Book-keeping for one object during :func:`refine_slice`."""

    __slots__ = ("k", "label", "bbox", "area", "clicks", "roi", "prob", "mask", "status")

    def __init__(self, k, label, bbox, area):
        self.k = k  # dense id in refine_slice
        self.label = label
        self.bbox = bbox
        self.area = area
        self.clicks: list[tuple[int, int, bool]] = []
        self.roi = None
        self.prob = None
        self.mask = None
        self.status = "refined"


def _supported(binary: np.ndarray, old: np.ndarray, clicks, offset) -> np.ndarray:
    """Keep the components of ``binary`` that touch ``old`` or a positive click."""
    lab, n = ndi.label(binary)
    if n == 0:
        return binary
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[old])] = True
    oy, ox = offset
    for y, x, positive in clicks:
        yy, xx = y - oy, x - ox
        if positive and 0 <= yy < lab.shape[0] and 0 <= xx < lab.shape[1]:
            keep[lab[yy, xx]] = True
    keep[0] = False
    return keep[lab]


def refine_slice(
    image,
    labels,
    predictor,
    options: RefineOptions | None = None,
    *,
    index: tuple[int, ...] = (),
    cancel: Callable[[], bool] | None = None,
    **changes,
) -> tuple[np.ndarray, list[ObjectReport]]:
    """Refine every object of one 2-D slice; see the module docstring for the rules.

    ``options`` (default :class:`~napari_fcfi.stack.options.RefineOptions`) holds the rule
    parameters; keyword ``changes`` override single ones (``margin=0.2``).

    ``image`` is (Y, X) or (Y, X, C), ``labels`` (Y, X) integer ids. ``predictor`` is a
    :class:`napari_fcfi.Predictor`; its ``predict_many`` is called once per pass with all
    objects of the slice. Returns the refined labels (same dtype) and one
    :class:`ObjectReport` per object. Raises :class:`RefineCancelled` if ``cancel()``
    becomes true (nothing is returned for the slice then).
    """
    from napari_fcfi.inference.maps import RoiMap

    opts = RefineOptions.of(options, **changes)
    min_size, extra_clicks, click_distance = opts.min_size, opts.extra_clicks, opts.click_distance
    min_iou, margin, batch_size = opts.min_iou, opts.margin, opts.batch_size
    image = np.asarray(image)
    labels = np.asarray(labels)
    check_labels_dtype(labels.dtype)
    if labels.ndim != 2:
        raise ValueError(f"labels slice must be 2-D (Y, X), got shape {labels.shape}")
    split_channels(image.shape, labels.shape)
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not contain negative ids")
    h, w = labels.shape
    thr = float(predictor.threshold)

    ids = np.unique(labels)
    ids = ids[ids != 0]
    # dense 1..n numbering for find_objects (ids may be large and sparse)
    dense = np.searchsorted(ids, labels).astype(np.int64) + 1
    dense[labels == 0] = 0
    boxes = ndi.find_objects(dense, max_label=len(ids))
    areas = np.bincount(dense.ravel(), minlength=len(ids) + 1)

    objs: list[_Obj] = []
    todo: list[_Obj] = []
    for k, (lab, bbox) in enumerate(zip(ids, boxes), start=1):
        obj = _Obj(k, lab.item(), bbox, int(areas[k]))
        objs.append(obj)
        if obj.area < min_size:
            obj.status = "small"
            continue
        y, x = interior_point(dense[bbox] == k)
        obj.clicks.append((y + bbox[0].start, x + bbox[1].start, True))
        todo.append(obj)

    def check_cancel():
        if cancel is not None and cancel():
            raise RefineCancelled([], [])

    def run(batch: list[_Obj], first: bool):
        """predict_many over ``batch``; the feedback is the old mask or the last prob.

        Feedback maps are passed as :class:`~napari_fcfi.inference.RoiMap` (zero outside a
        rectangle), so memory is bounded by the objects' sizes, not the image's.
        """
        for start in range(0, len(batch), _CHUNK):
            check_cancel()
            part = batch[start : start + _CHUNK]
            requests = []
            for obj in part:
                if first:
                    y0, x0 = obj.bbox[0].start, obj.bbox[1].start
                    fb = RoiMap((h, w), y0, x0, (dense[obj.bbox] == obj.k).astype(np.float32))
                else:
                    fb = RoiMap((h, w), obj.roi[0].start, obj.roi[1].start, obj.prob)
                requests.append((list(obj.clicks), fb))
            results = predictor.predict_many(image, requests, batch_size=batch_size)
            for obj, (roi, prob) in zip(part, results):
                obj.roi = tuple(slice(int(s.start or 0), int(s.stop)) for s in roi)
                obj.prob = np.asarray(prob, np.float32)

    def window_masks(obj: _Obj):
        win = _union(obj.roi, obj.bbox)
        old = dense[win] == obj.k
        new = np.zeros_like(old)
        ry = slice(obj.roi[0].start - win[0].start, obj.roi[0].stop - win[0].start)
        rx = slice(obj.roi[1].start - win[1].start, obj.roi[1].stop - win[1].start)
        p = obj.prob
        new[ry, rx] = (p > thr + margin) | (old[ry, rx] & (p > thr - margin))
        return win, old, new

    run(todo, first=True)
    for _ in range(max(0, int(extra_clicks))):
        again = []
        for obj in todo:
            win, old, new = window_masks(obj)
            click = _disagreement_click(old, new, click_distance)
            if click is not None:
                y, x, positive = click
                obj.clicks.append((y + win[0].start, x + win[1].start, positive))
                again.append(obj)
        if not again:
            break
        run(again, first=False)

    # failure fallback, then ownership compositing
    out = np.zeros_like(labels)
    best = np.zeros((h, w), np.float32)
    refined = []
    for k, obj in enumerate(objs, start=1):
        if obj.status == "refined":
            win, old, new = window_masks(obj)
            new = _supported(new, old, obj.clicks, (win[0].start, win[1].start))
            if not new.any() or iou(old, new) < min_iou:
                obj.status = "failed"
            else:
                obj.mask = (win, new)
                refined.append(obj)
        if obj.status != "refined":
            m = dense[obj.bbox] == k
            out[obj.bbox][m] = obj.label
            best[obj.bbox][m] = np.inf
    for obj in refined:
        win, new = obj.mask
        prob = np.zeros(new.shape, np.float32)
        ry = slice(obj.roi[0].start - win[0].start, obj.roi[0].stop - win[0].start)
        rx = slice(obj.roi[1].start - win[1].start, obj.roi[1].stop - win[1].start)
        prob[ry, rx] = obj.prob
        b = best[win]
        owner = labels[win] == obj.label
        take = new & ((prob > b) | ((prob == b) & owner))
        out[win][take] = obj.label
        b[take] = prob[take]

    report = []
    for k, obj in enumerate(objs, start=1):
        win = obj.bbox if obj.roi is None else _union(obj.roi, obj.bbox)
        old = dense[win] == k
        new = out[win] == obj.label
        area_new = int(np.count_nonzero(new))
        status = obj.status
        if status == "refined" and area_new == 0:
            status = "lost"
        report.append(
            ObjectReport(
                slice=tuple(int(i) for i in index),
                label=obj.label,
                status=status,
                area_old=obj.area,
                area_new=area_new,
                iou=iou(old, new),
                changed_pixels=int(np.count_nonzero(old ^ new)),
                clicks=len(obj.clicks),
            )
        )
    return out, report


# ----------------------------------------------------------------------------- stacks

#: Predictor settings for batch refinement, on top of the model's ``inference_defaults``:
#: each object is seen in a window of at least 128 px (its bounding box times 2) resized to
#: 128 px, so objects up to ~64 px are processed at native resolution, with the
#: horizontal-flip average only (two passes; it was worth +0.02 mean IoU in
#: ``benchmarks/bench_refine.py``). This keeps the cost per object small and constant;
#: pass your own ``predictor`` to change it.
REFINE_PREDICTOR = {
    "flip": True,
    "flip_axes": "x",
    "zoom_in_expansion_ratio": 2.0,
    "zoom_in_min_crop_size": 128,
    "zoom_in_target_size": 128,
}


def default_predictor(model=None, **overrides):
    """A :class:`napari_fcfi.Predictor` for batch refinement (:data:`REFINE_PREDICTOR`).

    ``model`` defaults to the built-in model (``load_model()``); ``overrides`` are further
    Predictor keyword arguments.
    """
    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    if model is None:
        model = load_model()
    return Predictor(model, **{**REFINE_PREDICTOR, **overrides})


def iter_refine(
    image,
    labels,
    predictor=None,
    options: RefineOptions | None = None,
    *,
    slices=None,
    cancel: Callable[[], bool] | None = None,
    **changes,
) -> Iterator[tuple[tuple[int, ...], np.ndarray, list[ObjectReport]]]:
    """Refine a (..., Y, X[, C]) stack slice by slice, yielding each finished slice.

    Yields ``(index, refined_slice, reports)``; ``index`` indexes the leading axes. Slices
    are read one at a time (``np.asarray`` of the slice), so dask and zarr inputs stream.
    ``options`` and ``changes`` are those of :func:`refine_slice`. Raises
    :class:`RefineCancelled` when ``cancel()`` becomes true; the slice in progress is then
    not yielded.
    """
    options = RefineOptions.of(options, **changes)
    check_labels_dtype(labels.dtype)
    split_channels(image.shape, labels.shape)  # validates; a slice keeps its channel axis
    indices = slice_indices(labels.shape, slices)
    if predictor is None:
        predictor = default_predictor()
    done: list = []
    for index in indices:
        if cancel is not None and cancel():
            raise RefineCancelled(done, [])
        img = np.asarray(image[index])
        lab = np.asarray(labels[index])
        try:
            out, report = refine_slice(img, lab, predictor, options, index=index, cancel=cancel)
        except RefineCancelled:
            raise RefineCancelled(done, []) from None
        done.append(index)
        yield index, out, report


def refine_labels(
    image,
    labels,
    predictor=None,
    options: RefineOptions | None = None,
    *,
    slices: slice | Iterable[int] | None = None,
    out=None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **changes,
) -> tuple[np.ndarray, list[ObjectReport]]:
    """Refine every object of every slice of ``labels`` with FCFI.

    Parameters
    ----------
    image, labels
        numpy or dask (or zarr) arrays; ``labels`` is (..., Y, X) integer ids and ``image``
        the same shape, optionally with a last channel axis (C <= 4).
    predictor
        a :class:`napari_fcfi.Predictor`; default :func:`default_predictor` (the built-in
        model with the :data:`REFINE_PREDICTOR` settings).
    options
        a :class:`~napari_fcfi.stack.options.RefineOptions` (default: its defaults): the
        rules of the module docstring and the network batch size.
    **changes
        single options to override, e.g. ``margin=0.2``.
    slices
        restrict the first axis (a ``slice`` or ints); other slices are copied unchanged.
    out
        optional array-like of the labels' shape to write into slice by slice (e.g. a zarr
        array, to stream a large stack); default a new numpy array (a copy of ``labels``).
        Its dtype must hold every id of ``labels`` (``ValueError`` otherwise, before
        anything is written).
    progress
        called as ``progress(done, total)`` after every finished slice.
    cancel
        polled between slices and network batches; when it returns True a
        :class:`RefineCancelled` is raised. Finished slices are already in ``out``.

    Returns
    -------
    (refined_labels, report)
        ``refined_labels`` is ``out`` (or the new array); ``report`` a list of
        :class:`ObjectReport`, one per object and slice.
    """
    options = RefineOptions.of(options, **changes)
    check_labels_dtype(labels.dtype)
    split_channels(image.shape, labels.shape)
    indices = slice_indices(labels.shape, slices)
    if isinstance(labels, np.ndarray) and labels.size and labels.min() < 0:
        raise ValueError("labels must not contain negative ids")
    if out is None:
        out = np.array(labels, copy=True)
    elif tuple(out.shape) != tuple(labels.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(labels.shape)}")
    elif hasattr(out, "dtype"):
        check_out_dtype(labels, out.dtype)
    report: list[ObjectReport] = []
    done: list = []
    gen = iter_refine(
        image,
        labels,
        predictor,
        options,
        slices=slices,
        cancel=cancel,
    )
    try:
        for index, refined, rows in gen:
            out[index] = refined
            report.extend(rows)
            done.append(index)
            if progress is not None:
                progress(len(done), len(indices))
    except RefineCancelled:
        raise RefineCancelled(done, report) from None
    return out, report
