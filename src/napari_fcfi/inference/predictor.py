"""Clicks -> probability map with FCFI's official inference path (zoom-in, flip, feedback).

What happens for one click (the order of the official predictor, see
``shared/conformance/README.md`` section 2):

1. **View.** The part of the image the network sees.

   * *Zoom-in* (from the second click of an object on): the ROI is the bbox of the
     previous ``feedback_cffm > 0.5`` (an official quirk: the zoom state keeps the last map
     it pasted back, which is the CFFM feedback, not the prediction) plus every click,
     scaled by ``zoom_in_expansion_ratio`` about its centre, each side at least
     ``zoom_in_min_crop_size``, rounded and clamped. The previous ROI is kept unless a
     click lies outside it or its IoU with the new candidate is below 0.5. The 4-channel
     crop (image and previous mask) is resized with bilinear ``align_corners=True`` so that
     its longer side is ``zoom_in_target_size``; clicks map to
     ``crop_len * (c - roi_min) / roi_len`` (fractional).
   * *First-click window* (one click, a fresh zoom state, or no previous feedback above
     0.5): on an image whose sides are both at most ``zoom_in_target_size`` this is the
     whole image at its own resolution, exactly as the official predictor. On a larger image
     it is a ``target x target`` window at native resolution centred on the newest click
     (shifted to stay inside the image). When a feedback mask is given (for example a
     hand-painted label), the window is grown to contain that mask's zoom-in ROI; if it
     then exceeds the target size it is resized like a zoom-in crop. So the cost of every
     click, the first included, is bounded by the target size, not by the image.

   * *Object-scale first click* (``first_click="auto"``, the built-in model's default): a
     first click with no feedback runs twice. A coarse pass (no flip) on the first-click
     window finds the object's extent: the connected part of ``prob > 0.5`` at the click;
     while that part touches the window's border, the window grows x2.5 (resized to the
     target size) up to twice. The second pass is a zoom-in on that extent (expanded by
     ``first_click_expansion_ratio``, at least ``zoom_in_min_crop_size``), with the same
     click and no feedback: the object reaches the network at the scale it was trained at,
     whatever its size in the image. That box is not kept as the zoom-in ROI: the second
     click computes its own from the first mask and the clicks (with
     ``zoom_in_expansion_ratio``), so later clicks may look closer than the first one.
     ``first_click="window"`` keeps the single pass (the official predictor).

2. **Flip.** With ``flip=True`` and ``flip_axes="x"`` the batch is ``[x, flip(x)]``
   (clicks ``x -> W - x - 1``); the two logit maps are averaged, ``0.5 * (a + flip(b))``,
   *before* the sigmoid (the official predictor). ``flip_axes="xy"`` adds the vertical flip
   and both flips (clicks ``y -> H - y - 1``): four passes in one batch, the four logit
   maps averaged after undoing each flip. ``flip_axes="xyt"`` adds the transposes of those
   four (clicks ``(y, x) -> (x, y)``), run as a second batch: the eight symmetries of the
   square, eight logit maps averaged.
3. **Paste.** Sigmoid, then the map is resized back to the view (bilinear,
   ``align_corners=True``) and pasted into zeros: the probability is exactly 0 outside the
   view. The two feedback maps get the same flip and paste, without the sigmoid.

``points`` go to the network as int64 while the view is not resized and as float64 once it
is (fractional coordinates); ``new_points`` (the newest click, FFCM's focus) are always
int64, truncated. The gate is 0 when there is no feedback (``prev_prob`` None or all
zero) and 1 otherwise.

**Memory.** A view whose box is far larger than the network input (more than
:data:`SAMPLE_RATIO` times its pixels, e.g. a feedback mask covering most of a huge image)
is never normalised at full resolution: the image and the feedback are read only at the
rows and columns that the bilinear (``align_corners=True``) resize reads, normalised there
and interpolated with the resize's own weights. The answer goes back the same way: the
probability and feedback maps of such a view stay at the network's resolution
(:class:`~napari_fcfi.inference.resample.ScaledMap`) and are enlarged only where, and
when, they are read (a threshold or a bounding box is computed strip by strip). The memory
of a click is then bounded by the network input, not by the box.

**Threads.** :meth:`Predictor.predict` carries the zoom state from call to call; calls from
several threads are serialised by a lock, so each call sees and leaves a consistent state.
Calls for different objects still share that state: give each thread its own
:class:`Predictor`, or use :meth:`Predictor.predict_roi` (or an
:class:`~napari_fcfi.inference.session.InteractiveSession` per object), which take the
state explicitly.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import pick_device
from ..model.clicks import points_array
from .inputs import Map, PreparedImage, as_click_list, as_feedback
from .maps import Box, RoiMap, bbox, bbox_iou, clamp_bbox, expand_bbox, union_bbox
from .normalize import POLICIES
from .resample import ScaledMap, bilinear, linear_taps

# ZoomIn settings the official evaluation leaves at their defaults
SKIP_CLICKS = 1
RECOMPUTE_THRESH_IOU = 0.5
ZOOM_PROB_THRESH = 0.5
# fallbacks when neither the caller nor ``model.inference_defaults`` set them
DEFAULT_ZOOM = {
    "zoom_in_target_size": 400,
    "zoom_in_expansion_ratio": 1.4,
    "zoom_in_min_crop_size": 200,
    "first_click": "window",
    "first_click_expansion_ratio": None,  # None: zoom_in_expansion_ratio
    "flip_axes": "x",
    "threshold": 0.49,
    "correction_threshold": None,  # None: threshold
}
FIRST_CLICK_MODES = ("window", "auto")
#: test-time averaging: each pass is ``(flipped dims, transposed)``: the official horizontal
#: flip, horizontal and vertical flips, or those four and their transposes (the eight
#: symmetries of the square)
FLIP_AXES = {
    "x": (((), False), ((3,), False)),
    "xy": (((), False), ((3,), False), ((2,), False), ((2, 3), False)),
    "xyt": tuple((d, t) for t in (False, True) for d in ((), (3,), (2,), (2, 3))),
}
#: object-scale first click: the coarse window grows this much, at most this many times
FIRST_GROW_FACTOR = 2.5
FIRST_MAX_GROW = 2
#: a resized view whose box holds more than this many times the network input's pixels is
#: sampled at the network's grid instead of being normalised whole (bounded memory)
SAMPLE_RATIO = 4


class ZoomState(NamedTuple):
    """The zoom-in state carried from one click to the next (immutable).

    ``roi``: the current zoom ROI ``(rmin, rmax, cmin, cmax)`` inclusive, or None;
    ``prev_map``: the last pasted ``feedback_cffm`` (drives the next ROI), or None.
    """

    roi: Box | None = None
    prev_map: Map | None = None


@dataclass(frozen=True)
class View:
    """The region the network sees: ``box`` (inclusive) resized to ``net_hw``."""

    box: Box
    net_hw: tuple[int, int]
    zoomed: bool  # True for an official zoom-in ROI

    @property
    def resized(self) -> bool:
        return (self.box[1] - self.box[0] + 1, self.box[3] - self.box[2] + 1) != self.net_hw

    @property
    def sampled(self) -> bool:
        """The box holds more than :data:`SAMPLE_RATIO` times the network input's pixels:
        its input is read at the network's grid and its answer kept at network resolution
        (see the module docstring, **Memory**)."""
        h, w = self.box[1] - self.box[0] + 1, self.box[3] - self.box[2] + 1
        nh, nw = self.net_hw
        return h * w > SAMPLE_RATIO * nh * nw and h >= nh and w >= nw


@dataclass(frozen=True)
class Prediction:
    """Everything one click produced (``Predictor.last_prediction``).

    ``feedback_ffcm`` is pasted back at the view's resolution only when it is read (nothing
    in the click loop needs it; on a large view it would be as big as the probability)."""

    prob: Map
    ffcm_paste: Callable[[], Map | None]
    feedback_cffm: Map | None
    view: View
    roi_recomputed: bool
    points: np.ndarray  # (passes, 2N, 3) as passed to the network (original, flipped...)
    new_points: np.ndarray  # (passes, 1, 3) int64
    points_dtype: torch.dtype
    gate: float

    @property
    def feedback_ffcm(self) -> Map | None:
        return self.ffcm_paste()

    @property
    def roi(self) -> Box | None:
        """The official zoom-in ROI of this click, None when not zoomed."""
        return self.view.box if self.view.zoomed else None

    @property
    def net_input_hw(self) -> tuple[int, int]:
        return self.view.net_hw


@dataclass
class _Job:
    """One object's network input, prepared on the CPU."""

    view: View
    clicks: list  # transformed clicks (y, x, index, positive), floats or ints
    crop: torch.Tensor  # (4, h, w) image + prev, at the box size or already at net_hw
    gate: float
    full_shape: tuple[int, int]


def _sampled_input(prepared: PreparedImage, prev: Map | None, view: View) -> torch.Tensor:
    """(4, nh, nw) network input of a large resized view without normalising the box.

    Only the image rows and columns that bilinear ``align_corners=True`` resizing reads are
    taken from the raw image (and from the feedback), normalised, then interpolated with
    the resize's weights: the same values as normalising the whole box and resizing it, at
    a cost bounded by the network input.
    """
    r0, r1, c0, c1 = view.box
    nh, nw = view.net_hw
    axes = []
    for n_in, n_out in ((r1 - r0 + 1, nh), (c1 - c0 + 1, nw)):
        i0, i1, l0, l1 = linear_taps(n_in, n_out)
        used = np.unique(np.concatenate([i0, i1]))
        axes.append((used, (np.searchsorted(used, i0), np.searchsorted(used, i1), l0, l1)))
    (rows, ty), (cols, tx) = axes
    rgb = bilinear(prepared.grid(rows + r0, cols + c0), ty, tx)
    if prev is None:
        pm = np.zeros((nh, nw), np.float32)
    else:
        pm = bilinear(prev.take(rows + r0, cols + c0), ty, tx)
    return torch.from_numpy(np.concatenate([rgb.transpose(2, 0, 1), pm[None]], axis=0))


def _setting(name: str, value, low: float, strict: bool, source: str) -> float:
    """``value`` as a finite float above ``low`` (``strict``) or at least ``low``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}{source}") from None
    if not math.isfinite(v) or (v <= low if strict else v < low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}{source}")
    return v


def unit_setting(name: str, value, source: str = "") -> float:
    """``value`` as a float in [0, 1], else ``ValueError`` naming ``name`` (and ``source``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}{source}") from None
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}{source}")
    return v


def model_presets(model) -> dict:
    """The model's named settings (``model.inference_presets``): ``{name: {setting: value}}``."""
    return dict(getattr(model, "inference_presets", None) or {})


def _choice(name: str, value, choices: tuple, source: str) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}{source}")
    return value


def _check_weights(model) -> None:
    """Refuse a network whose parameters or buffers hold NaN or infinite values (it would
    answer every click with an empty mask)."""
    named = []
    for attr in ("named_parameters", "named_buffers"):
        fn = getattr(model, attr, None)
        if callable(fn):
            named.extend(fn())
    for name, t in named:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            if not bool(torch.isfinite(t).all()):
                raise ValueError(
                    f"the model's weight {name!r} contains NaN or infinite values, so every "
                    "prediction would be empty: the checkpoint is corrupt or its training "
                    "diverged; load another checkpoint"
                )


class Predictor:
    """FCFI inference for one object at a time (see the module docstring for the rules).

    Parameters: ``model`` follows the forward contract of :mod:`napari_fcfi.model`;
    ``first_click`` is ``"auto"`` (object-scale two-pass first click) or ``"window"``;
    ``device`` None picks CUDA, MPS, CPU; ``zoom_in`` and ``flip`` switch the two test-time
    transforms; ``flip_axes`` is ``"x"`` (horizontal flip, two passes), ``"xy"`` (both
    flips, four passes) or ``"xyt"`` (both flips and their transposes, eight passes);
    ``threshold`` binarises (``prob > threshold``) the answer to an object's first click,
    and ``correction_threshold`` (None: ``threshold``) every answer that had feedback (see
    :meth:`threshold_for`); ``normalize`` is the image policy of
    :mod:`napari_fcfi.inference.normalize` (None: the image is already float RGB in [0, 1]).
    ``first_click_expansion_ratio`` sets the box of the object-scale first click's second
    pass (None: ``zoom_in_expansion_ratio``). These settings default to the model's preset
    ``preset`` (a name from ``model.inference_presets``, e.g. ``"nuclei"``), then to
    ``model.inference_defaults``, then to 400 / 1.4 / 200 / ``"x"`` / 0.49 (the official
    ZoomIn, flip and threshold defaults).
    """

    def __init__(
        self,
        model,
        device=None,
        zoom_in: bool = True,
        flip: bool = True,
        threshold: float | None = None,
        normalize="auto",
        zoom_in_target_size: int | None = None,
        zoom_in_expansion_ratio: float | None = None,
        zoom_in_min_crop_size: int | None = None,
        first_click: str | None = None,
        first_click_expansion_ratio: float | None = None,
        flip_axes: str | None = None,
        correction_threshold: float | None = None,
        preset: str | None = None,
    ):
        if normalize not in POLICIES:
            raise ValueError(f"unknown normalize policy {normalize!r}; choose one of {POLICIES}")
        presets = model_presets(model)
        if preset is not None and preset not in presets:
            names = ", ".join(sorted(presets)) or "none"
            raise ValueError(f"unknown preset {preset!r}; this model's presets: {names}")
        unknown = sorted(set(presets.get(preset, {})) - set(DEFAULT_ZOOM))
        if unknown:
            raise ValueError(
                f"the model's preset {preset!r} sets unknown settings {unknown}; known: "
                f"{sorted(DEFAULT_ZOOM)}"
            )
        defaults = dict(DEFAULT_ZOOM)
        for layer in (getattr(model, "inference_defaults", None) or {}, presets.get(preset, {})):
            defaults.update({k: v for k, v in layer.items() if k in DEFAULT_ZOOM})
        given = {
            "zoom_in_target_size": zoom_in_target_size,
            "zoom_in_expansion_ratio": zoom_in_expansion_ratio,
            "zoom_in_min_crop_size": zoom_in_min_crop_size,
            "first_click": first_click,
            "first_click_expansion_ratio": first_click_expansion_ratio,
            "flip_axes": flip_axes,
            "threshold": threshold,
            "correction_threshold": correction_threshold,
        }
        settings = {k: (defaults[k] if v is None else v) for k, v in given.items()}
        origin = f"preset {preset!r}" if preset is not None else "inference_defaults"

        def source(key):
            return f" (from the model's {origin})" if given[key] is None else ""

        self.threshold = unit_setting("threshold", settings["threshold"], source("threshold"))
        ct = settings["correction_threshold"]
        #: binarises the answers that had feedback; None: ``threshold``
        self.correction_threshold = (
            None
            if ct is None
            else unit_setting("correction_threshold", ct, source("correction_threshold"))
        )
        self.preset = preset
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()

        self.first_click = _choice(
            "first_click", settings["first_click"], FIRST_CLICK_MODES, source("first_click")
        )
        self.flip_axes = _choice(
            "flip_axes", settings["flip_axes"], tuple(FLIP_AXES), source("flip_axes")
        )

        self.zoom_in_target_size = int(
            _setting(
                "zoom_in_target_size",
                settings["zoom_in_target_size"],
                1,
                False,
                source("zoom_in_target_size"),
            )
        )
        self.zoom_in_expansion_ratio = _setting(
            "zoom_in_expansion_ratio",
            settings["zoom_in_expansion_ratio"],
            0,
            True,
            source("zoom_in_expansion_ratio"),
        )
        first_exp = settings["first_click_expansion_ratio"]
        self.first_click_expansion_ratio = (
            self.zoom_in_expansion_ratio
            if first_exp is None
            else _setting(
                "first_click_expansion_ratio",
                first_exp,
                0,
                True,
                source("first_click_expansion_ratio"),
            )
        )
        self.zoom_in_min_crop_size = int(
            _setting(
                "zoom_in_min_crop_size",
                settings["zoom_in_min_crop_size"],
                0,
                False,
                source("zoom_in_min_crop_size"),
            )
        )
        _check_weights(self.model)
        self.zoom_in = bool(zoom_in)
        self.flip = bool(flip)
        self.normalize = normalize
        self._state = ZoomState()
        #: (source image, its PreparedImage) of the last image, read and replaced as one
        self._prepared_pair: tuple | None = None
        #: serialises the calls that read and write the zoom state
        self._lock = threading.RLock()
        self.last_prediction: Prediction | None = None

    def threshold_for(self, first: bool) -> float:
        """The binarisation threshold of an answer: ``threshold`` for an object's first
        click (no feedback yet), ``correction_threshold`` for the answers that had feedback
        (later clicks, a click on an existing mask)."""
        if first or self.correction_threshold is None:
            return self.threshold
        return self.correction_threshold

    # ------------------------------------------------------------------ state and image
    def get_state(self) -> ZoomState:
        """Snapshot of the zoom state (immutable; safe to keep for undo)."""
        with self._lock:
            return self._state

    def set_state(self, state: ZoomState) -> None:
        if not isinstance(state, ZoomState):
            raise ValueError("state must be a ZoomState from get_state()")
        with self._lock:
            self._state = state

    def reset_state(self) -> None:
        """Forget the zoom ROI and the previous feedback (a new object starts)."""
        with self._lock:
            self._state = ZoomState()

    def prepare_image(self, image) -> PreparedImage:
        """Validate ``image`` and cache its normalisation (the last image is remembered;
        pass the returned object to :meth:`predict` to skip the lookup). Do not modify an
        image in place between calls: prepare it again instead."""
        if isinstance(image, PreparedImage):
            if image.normalize != self.normalize:
                raise ValueError(
                    f"image was prepared with normalize={image.normalize!r}, "
                    f"this predictor uses {self.normalize!r}"
                )
            return image
        cached = self._prepared_pair
        if cached is not None and cached[0] is image:
            return cached[1]
        prepared = PreparedImage(image, self.normalize)
        self._prepared_pair = (image, prepared)
        return prepared

    # ------------------------------------------------------------------ public API
    def predict(self, image, clicks, prev_prob=None) -> np.ndarray:
        """Probability map (float32 (H, W)) for the chronological ``clicks``.

        ``prev_prob``: the feedback (the previous probability map, or a binary mask such as
        a hand-edited label); None means no feedback (gate 0). The zoom state is carried
        from call to call; a single click starts a new object. ``clicks`` may be any
        iterable (a generator included).

        Calls from several threads run one at a time (each reads and updates the zoom state
        as a whole); for objects segmented in parallel use one predictor per thread or
        :meth:`predict_roi` with explicit states.
        """
        with self._lock:
            prepared = self.prepare_image(image)
            clicks = as_click_list(clicks, prepared.shape)
            prev = as_feedback(prev_prob, prepared.shape)
            pred, state = self.predict_roi(prepared, clicks, prev, self._state)
            self._state = state
            return pred.prob.full()

    def predict_roi(
        self, prepared: PreparedImage, clicks, prev: Map | None, state: ZoomState
    ) -> tuple[Prediction, ZoomState]:
        """Functional core of :meth:`predict`: validated inputs in, ``(Prediction, new
        zoom state)`` out; neither the predictor nor the inputs are modified (besides
        ``last_prediction``)."""
        if self._auto_first_applies(clicks, prev, state):
            pred = self._auto_first(prepared, clicks)
            self.last_prediction = pred
            # the first click's box is not a zoom-in ROI: the next click computes its own
            return pred, ZoomState(
                None, pred.feedback_cffm if pred.feedback_cffm is not None else pred.prob
            )
        view, recomputed, new_roi = self._choose_view(prepared.shape, clicks, prev, state)
        job = self._make_job(prepared, clicks, prev, view)
        (pred,) = self._forward([job], recomputed=[recomputed])
        self.last_prediction = pred
        return pred, ZoomState(
            new_roi, pred.feedback_cffm if pred.feedback_cffm is not None else pred.prob
        )

    def predict_many(self, image, requests: Sequence, batch_size: int = 8) -> list:
        """Many independent objects on one image, batched through the network.

        ``requests``: ``(clicks, prev_prob_or_None)`` pairs, each with a fresh zoom state.
        A request with feedback above 0.5 is treated as an object being refined: its view is
        the zoom-in ROI of that feedback and its clicks (the official zoom-in step, resized
        to the target size), so every object costs one target-size crop whatever the image
        size. Without feedback the first-click window is used. Returns, per request,
        ``((slice_y, slice_x), prob_crop)``: the view in image coordinates and the
        probability inside it (0 elsewhere).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        prepared = self.prepare_image(image)
        jobs = []
        for i, req in enumerate(requests):
            try:
                clicks, prev_prob = req
            except (TypeError, ValueError):
                raise ValueError(
                    f"request {i} must be a (clicks, prev_prob_or_None) pair"
                ) from None
            clicks = as_click_list(clicks, prepared.shape)
            prev = as_feedback(prev_prob, prepared.shape)
            if self.zoom_in and prev is not None and prev.bbox_above(ZOOM_PROB_THRESH) is not None:
                view = self._zoom_view(
                    prepared.shape, self._object_roi(prepared.shape, clicks, prev)
                )
            else:
                view = self._first_view(prepared.shape, clicks, prev)
            jobs.append(self._make_job(prepared, clicks, prev, view))
        results: list = [None] * len(jobs)
        groups: dict = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.view.net_hw, job.gate), []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), batch_size):
                chunk = idx[s : s + batch_size]
                preds = self._forward([jobs[i] for i in chunk], recomputed=[True] * len(chunk))
                for i, p in zip(chunk, preds):
                    results[i] = (p.prob.slices, p.prob.data)
        return results

    # ------------------------------------------------------------------ object-scale first click
    def _auto_first_applies(self, clicks, prev: Map | None, state: ZoomState) -> bool:
        if not (self.zoom_in and self.first_click == "auto"):
            return False
        if prev is not None and prev.any_above(0.0):
            return False  # feedback (e.g. a painted label) defines the view already
        return len(clicks) <= SKIP_CLICKS or state.prev_map is None

    def _window(self, shape, y: int, x: int, side: int) -> View:
        """A ``side`` x ``side`` window centred on (y, x), clamped; resized to the target
        size when larger."""
        H, W = shape
        wh, ww = min(side, H), min(side, W)
        y0 = min(max(y - wh // 2, 0), H - wh)
        x0 = min(max(x - ww // 2, 0), W - ww)
        box = (y0, y0 + wh - 1, x0, x0 + ww - 1)
        if max(wh, ww) > self.zoom_in_target_size:
            return self._zoom_view(shape, box, zoomed=False)
        return View(box, (wh, ww), False)

    def _auto_first(self, prepared: PreparedImage, clicks) -> Prediction:
        """Coarse pass(es) for the object's extent, then a zoom-in pass at that extent."""
        from scipy import ndimage as ndi

        shape = prepared.shape
        H, W = shape
        y, x, _ = clicks[-1]
        side = self.zoom_in_target_size
        extent = None
        for grow in range(FIRST_MAX_GROW + 1):
            view = self._window(shape, y, x, side)
            job = self._make_job(prepared, clicks, None, view)
            (coarse,) = self._forward([job], recomputed=[False], flip=False)
            mask = coarse.prob.above(ZOOM_PROB_THRESH)
            if not mask.any():
                break
            lab, _ = ndi.label(mask)
            r0, c0 = coarse.prob.y0, coarse.prob.x0
            iy = min(max(y - r0, 0), mask.shape[0] - 1)
            ix = min(max(x - c0, 0), mask.shape[1] - 1)
            at = lab[iy, ix]
            part = lab == at if at else mask
            box = bbox(part)
            extent = (box[0] + r0, box[1] + r0, box[2] + c0, box[3] + c0)
            vb = view.box
            touches = (
                (extent[0] <= vb[0] and vb[0] > 0)
                or (extent[1] >= vb[1] and vb[1] < H - 1)
                or (extent[2] <= vb[2] and vb[2] > 0)
                or (extent[3] >= vb[3] and vb[3] < W - 1)
            )
            if not touches or grow == FIRST_MAX_GROW:
                break
            side = int(round(side * FIRST_GROW_FACTOR))
        if extent is None:  # nothing found: the coarse answer, with its flip average
            view = self._window(shape, y, x, self.zoom_in_target_size)
            job = self._make_job(prepared, clicks, None, view)
            (pred,) = self._forward([job], recomputed=[False])
            return pred
        for cy, cx, _ in clicks:
            extent = union_bbox(extent, (cy, cy, cx, cx))
        roi = clamp_bbox(
            expand_bbox(extent, self.first_click_expansion_ratio, self.zoom_in_min_crop_size),
            H,
            W,
        )
        view = self._zoom_view(shape, roi)
        job = self._make_job(prepared, clicks, None, view)
        (pred,) = self._forward([job], recomputed=[True])
        return pred

    # ------------------------------------------------------------------ views
    def _object_roi(self, shape, clicks, prev: Map) -> Box | None:
        """Official ``get_object_roi``: bbox of (prev > 0.5) plus the clicks, expanded."""
        box = prev.bbox_above(ZOOM_PROB_THRESH)
        if box is None:
            return None
        for y, x, _ in clicks:
            box = union_bbox(box, (y, y, x, x))
        box = expand_bbox(box, self.zoom_in_expansion_ratio, self.zoom_in_min_crop_size)
        return clamp_bbox(box, *shape)

    def _zoom_view(self, shape, box: Box, zoomed: bool = True) -> View:
        h, w = box[1] - box[0] + 1, box[3] - box[2] + 1
        scale = self.zoom_in_target_size / max(h, w)
        return View(box, (int(round(h * scale)), int(round(w * scale))), zoomed)

    def _first_view(self, shape, clicks, prev: Map | None) -> View:
        """Whole image when it fits the target size (official), else a window (see module
        docstring)."""
        H, W = shape
        t = self.zoom_in_target_size
        if not self.zoom_in or (H <= t and W <= t):
            return View((0, H - 1, 0, W - 1), (H, W), False)
        y, x, _ = clicks[-1]
        box = self._window(shape, y, x, t).box
        if prev is not None:
            obj = self._object_roi(shape, clicks, prev)
            if obj is not None:
                box = union_bbox(box, obj)
        if max(box[1] - box[0] + 1, box[3] - box[2] + 1) > t:
            return self._zoom_view(shape, box, zoomed=False)
        return View(box, (box[1] - box[0] + 1, box[3] - box[2] + 1), False)

    def _choose_view(self, shape, clicks, prev, state: ZoomState):
        """-> (view, roi_recomputed, zoom ROI to keep)."""
        if not self.zoom_in:
            return self._first_view(shape, clicks, prev), False, None
        if len(clicks) <= SKIP_CLICKS or state.prev_map is None:
            return self._first_view(shape, clicks, prev), False, None
        cand = self._object_roi(shape, clicks, state.prev_map)
        if cand is None:
            return self._first_view(shape, clicks, prev), False, None
        roi, recomputed = state.roi, False
        if (
            roi is None
            or not _clicks_inside(roi, clicks)
            or bbox_iou(cand, roi) < RECOMPUTE_THRESH_IOU
        ):
            roi, recomputed = cand, True
        return self._zoom_view(shape, roi), recomputed, roi

    # ------------------------------------------------------------------ network
    def _make_job(self, prepared: PreparedImage, clicks, prev: Map | None, view: View) -> _Job:
        r0, r1, c0, c1 = view.box
        nh, nw = view.net_hw
        gate = 0.0 if prev is None or not prev.any_above(0.0) else 1.0
        if view.sampled:
            crop = _sampled_input(prepared, prev, view)  # already at the network's size
        else:
            rgb = prepared.crop(view.box)
            if prev is None:
                pm = np.zeros((r1 - r0 + 1, c1 - c0 + 1), np.float32)
            else:
                pm = prev.region(r0, r1 + 1, c0, c1 + 1)
            crop = torch.from_numpy(np.concatenate([rgb.transpose(2, 0, 1), pm[None]], axis=0))
        if view.resized or view.zoomed:
            hh, ww = r1 - r0 + 1, c1 - c0 + 1
            tclicks = [
                (nh * (y - r0) / hh, nw * (x - c0) / ww, i, p) for i, (y, x, p) in enumerate(clicks)
            ]
        else:
            tclicks = [(y - r0, x - c0, i, p) for i, (y, x, p) in enumerate(clicks)]
        return _Job(view, tclicks, crop, gate, prepared.shape)

    def _forward(
        self, jobs: list[_Job], recomputed: list[bool], flip: bool | None = None
    ) -> list[Prediction]:
        """Run one batch of jobs that share the network input size and the gate
        (``flip`` None: the predictor's setting)."""
        use_flip = self.flip if flip is None else bool(flip)
        transforms = FLIP_AXES[self.flip_axes] if use_flip else (((), False),)
        nh, nw = jobs[0].view.net_hw
        gate = jobs[0].gate
        float_coords = any(j.view.resized or j.view.zoomed for j in jobs)
        plain = [[(y, x, p) for y, x, _, p in j.clicks] for j in jobs]
        batch_clicks = [
            [(*_moved(y, x, dims, t, nh, nw), p) for y, x, p in bc]
            for dims, t in transforms
            for bc in plain
        ]
        n = max(max(sum(p for *_, p in bc), sum(not p for *_, p in bc), 1) for bc in batch_clicks)
        points = np.stack([_padded_points(bc, n) for bc in batch_clicks])
        new_points = np.asarray(
            [[[y, x, 1.0 if p else 0.0]] for y, x, p in (bc[-1] for bc in batch_clicks)]
        )
        pdtype = torch.float64 if float_coords else torch.int64
        dev = self.device
        b = len(jobs)
        with torch.inference_mode():
            parts = []
            for j in jobs:
                c = j.crop[None].to(dev)
                if tuple(c.shape[-2:]) != (nh, nw):
                    c = F.interpolate(c, size=(nh, nw), mode="bilinear", align_corners=True)
                parts.append(c)
            x = torch.cat(parts)
            if not float_coords:
                pts = torch.from_numpy(points.astype(np.int64)).to(dev)
            elif dev.type == "mps":  # no float64 on Apple GPUs
                pts = torch.from_numpy(points.astype(np.float32)).to(dev)
            else:
                pts = torch.from_numpy(points).to(dev)
            # int64 casts truncate toward zero, as the official predictor's tensor cast
            newp = torch.from_numpy(new_points.astype(np.int64)).to(dev)
            # one batch for the flips, one for their transposes (a non-square input changes
            # shape when transposed); each answer is transposed back at once
            answers: dict[str, list] = {}
            flips = []  # the flipped dims of each pass, in the order of the answers
            for transposed in (False, True):
                ks = [k for k, (_, t) in enumerate(transforms) if t == transposed]
                if not ks:
                    continue
                dims = [transforms[k][0] for k in ks]
                flips += dims
                xg = torch.cat([torch.flip(x, dims=d) if d else x for d in dims])
                if transposed:
                    xg = xg.transpose(-1, -2)
                sel = [k * b + i for k in ks for i in range(b)]
                out = self.model(xg[:, :3], xg[:, 3:4], pts[sel], newp[sel], gate)
                for key in ("instances", "feedback_ffcm", "feedback_cffm"):
                    if out.get(key) is not None:
                        m = out[key]
                        answers.setdefault(key, []).append(m.transpose(-1, -2) if transposed else m)
            maps = {key: torch.cat(v) for key, v in answers.items()}
            merged = {}
            for key, m in maps.items():
                m = m.float()
                if m.shape[-2:] != (nh, nw):
                    m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=True)
                if len(flips) > 1:
                    views = [m[k * b : (k + 1) * b] for k in range(len(flips))]
                    m = sum(torch.flip(v, dims=d) if d else v for v, d in zip(views, flips))
                    m = m / len(flips)
                if key == "instances":
                    if not bool(torch.isfinite(m).all()):
                        warnings.warn(
                            "the network returned NaN or infinite values; the mask of this "
                            "click is empty where they occur (check the model's weights and "
                            "the image)",
                            RuntimeWarning,
                            stacklevel=4,
                        )
                    m = torch.sigmoid(m)
                merged[key] = m
            results = []
            pts_np = pts.cpu().numpy()
            newp_np = newp.cpu().numpy()
            nb = len(transforms)
            for i, job in enumerate(jobs):
                pasted = {
                    key: _paste(m[i : i + 1], job)
                    for key, m in merged.items()
                    if key != "feedback_ffcm"
                }
                ffcm = merged.get("feedback_ffcm")
                ffcm_paste = _lazy_paste(None if ffcm is None else ffcm[i : i + 1].cpu(), job)
                sel = [i + k * b for k in range(nb)]
                results.append(
                    Prediction(
                        prob=pasted["instances"],
                        ffcm_paste=ffcm_paste,
                        feedback_cffm=pasted.get("feedback_cffm"),
                        view=job.view,
                        roi_recomputed=recomputed[i],
                        points=pts_np[sel],
                        new_points=newp_np[sel],
                        points_dtype=pdtype,
                        gate=gate,
                    )
                )
        return results


def _paste(m: torch.Tensor, job) -> Map:
    """A (1, 1, h, w) network-resolution map pasted back into the job's view box: kept at
    network resolution (a :class:`~napari_fcfi.inference.resample.ScaledMap`, read on
    demand) for a sampled view (:attr:`View.sampled`)."""
    r0, r1, c0, c1 = job.view.box
    if job.view.sampled:
        return ScaledMap(job.full_shape, job.view.box, m[0, 0].cpu().numpy())
    if job.view.resized or job.view.zoomed:
        m = F.interpolate(m, size=(r1 - r0 + 1, c1 - c0 + 1), mode="bilinear", align_corners=True)
    return RoiMap(job.full_shape, r0, c0, m[0, 0].cpu().numpy())


def _lazy_paste(m: torch.Tensor | None, job) -> Callable[[], Map | None]:
    """:func:`_paste` run on first call (and remembered)."""
    done: list = []

    def get() -> Map | None:
        if not done:
            done.append(None if m is None else _paste(m, job))
        return done[0]

    return get


def _moved(y, x, dims, transposed: bool, nh: int, nw: int):
    """A click's network coordinates in a pass flipped along ``dims`` (2: rows, 3: columns)
    of an ``nh x nw`` input, then transposed."""
    y = nh - y - 1 if 2 in dims else y
    x = nw - x - 1 if 3 in dims else x
    return (x, y) if transposed else (y, x)


def _padded_points(clicks, n: int) -> np.ndarray:
    """One batch element's official (2n, 3) layout, padded to ``n`` rows per group."""
    pts = points_array([(y, x, p) for y, x, p in clicks])
    k = pts.shape[0] // 2
    pad = np.full((n - k, 3), -1.0)
    return np.concatenate([pts[:k], pad, pts[k:], pad])


def _clicks_inside(roi: Box, clicks) -> bool:
    """Official ``check_object_roi``: rmin <= y < rmax and cmin <= x < cmax for every click."""
    return all(roi[0] <= y < roi[1] and roi[2] <= x < roi[3] for y, x, _ in clicks)
