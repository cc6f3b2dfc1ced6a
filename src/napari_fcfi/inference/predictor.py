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

4. **Local corrections** (``local_corrections_from`` N > 0; off unless asked for): from an
   object's N-th click on, an answer with feedback replaces the previous one only in the
   connected parts of the change that reach the newest click
   (:mod:`~napari_fcfi.inference.local`); elsewhere the previous answer stays. Not in the
   official predictor (0, the fallback, turns it off).

5. **Edge-guided corrections** (``guided_filter_radius`` r > 0; the built-in model's
   ``nuclei`` preset): the probability of every answer with feedback is passed through a
   guided filter at the network's input resolution, the network input's mean intensity as
   the guide (:mod:`~napari_fcfi.inference.guided`), before it is pasted back; the first
   click's answer is left as it is. Not in the official predictor (0, the fallback, turns
   it off).

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

**Modules.** The settings and their checks live in :mod:`~napari_fcfi.inference.settings`,
the choice of a view in :mod:`~napari_fcfi.inference.views` and the network passes in
:mod:`~napari_fcfi.inference.passes`; this module holds the click's order and its state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..devices import pick_device
from .inputs import Map, PreparedImage, as_click_list, as_feedback
from .local import merge_local
from .maps import RoiMap, bbox
from .normalize import POLICIES
from .passes import Job, Prediction, make_job, run_passes
from .settings import FLIP_AXES, check_weights, resolve_settings
from .views import SKIP_CLICKS, ZOOM_PROB_THRESH, ViewRules, ZoomState

#: object-scale first click: the coarse window grows this much, at most this many times
FIRST_GROW_FACTOR = 2.5
FIRST_MAX_GROW = 2


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
    pass (None: ``zoom_in_expansion_ratio``). ``local_corrections_from``: from this click of
    an object on, a correction changes the answer only where its change reaches the click
    (0: never). ``guided_filter_radius`` and ``guided_filter_eps``: the guided filter of the
    answers with feedback (radius in network pixels, 0: off). These settings default to the
    model's preset
    ``preset`` (a name from ``model.inference_presets``, e.g. ``"nuclei"``), then to
    ``model.inference_defaults``, then to 400 / 1.4 / 200 / ``"x"`` / 0.49 / 0 (the official
    ZoomIn, flip and threshold defaults, global corrections; see
    :mod:`~napari_fcfi.inference.settings`).
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
        local_corrections_from: int | None = None,
        guided_filter_radius: int | None = None,
        guided_filter_eps: float | None = None,
    ):
        if normalize not in POLICIES:
            raise ValueError(f"unknown normalize policy {normalize!r}; choose one of {POLICIES}")
        s = resolve_settings(
            model,
            preset,
            {
                "zoom_in_target_size": zoom_in_target_size,
                "zoom_in_expansion_ratio": zoom_in_expansion_ratio,
                "zoom_in_min_crop_size": zoom_in_min_crop_size,
                "first_click": first_click,
                "first_click_expansion_ratio": first_click_expansion_ratio,
                "flip_axes": flip_axes,
                "threshold": threshold,
                "correction_threshold": correction_threshold,
                "local_corrections_from": local_corrections_from,
                "guided_filter_radius": guided_filter_radius,
                "guided_filter_eps": guided_filter_eps,
            },
        )
        self.threshold = s["threshold"]
        #: binarises the answers that had feedback; None: ``threshold``
        self.correction_threshold = s["correction_threshold"]
        self.preset = preset
        self.first_click = s["first_click"]
        self.flip_axes = s["flip_axes"]
        self.zoom_in_target_size = s["zoom_in_target_size"]
        self.zoom_in_expansion_ratio = s["zoom_in_expansion_ratio"]
        self.first_click_expansion_ratio = s["first_click_expansion_ratio"]
        self.zoom_in_min_crop_size = s["zoom_in_min_crop_size"]
        #: from this click of an object on, a correction is local (0: off; see
        #: :mod:`~napari_fcfi.inference.local`)
        self.local_corrections_from = s["local_corrections_from"]
        #: guided filter of the answers with feedback: window radius in network pixels (0:
        #: off) and regularisation (see :mod:`~napari_fcfi.inference.guided`)
        self.guided_filter_radius = s["guided_filter_radius"]
        self.guided_filter_eps = s["guided_filter_eps"]
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        check_weights(self.model)
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

    @property
    def view_rules(self) -> ViewRules:
        """The rules that choose each click's view, from the current zoom-in settings."""
        return ViewRules(
            self.zoom_in_target_size,
            self.zoom_in_expansion_ratio,
            self.zoom_in_min_crop_size,
            self.zoom_in,
        )

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
        view, recomputed, new_roi = self.view_rules.choose(prepared.shape, clicks, prev, state)
        (pred,) = self._forward([make_job(prepared, clicks, prev, view)], [recomputed])
        pred = self._localise(pred, clicks, prev)
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
        rules = self.view_rules
        jobs: list[Job] = []
        for i, req in enumerate(requests):
            try:
                clicks, prev_prob = req
            except (TypeError, ValueError):
                raise ValueError(
                    f"request {i} must be a (clicks, prev_prob_or_None) pair"
                ) from None
            clicks = as_click_list(clicks, prepared.shape)
            prev = as_feedback(prev_prob, prepared.shape)
            view = rules.refine_view(prepared.shape, clicks, prev)
            jobs.append(make_job(prepared, clicks, prev, view))
        results: list = [None] * len(jobs)
        groups: dict = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.view.net_hw, job.gate), []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), batch_size):
                chunk = idx[s : s + batch_size]
                preds = self._forward([jobs[i] for i in chunk], [True] * len(chunk))
                for i, p in zip(chunk, preds):
                    results[i] = (p.prob.slices, p.prob.data)
        return results

    def _localise(self, pred: Prediction, clicks, prev: Map | None) -> Prediction:
        """A late correction kept where its change reaches the newest click (see
        :mod:`~napari_fcfi.inference.local`). Answers kept at network resolution (views far
        larger than the network input) stay whole: merging them would read the whole box."""
        n = self.local_corrections_from
        if not n or len(clicks) < n or pred.gate == 0:  # gate 0: no feedback to keep
            return pred
        if not (isinstance(pred.prob, RoiMap) and isinstance(prev, RoiMap)):
            return pred
        merged = merge_local(pred.prob, prev, clicks[-1], self.threshold_for(False))
        return pred if merged is None else replace(pred, prob=merged)

    # ------------------------------------------------------------------ object-scale first click
    def _auto_first_applies(self, clicks, prev: Map | None, state: ZoomState) -> bool:
        if not (self.zoom_in and self.first_click == "auto"):
            return False
        if prev is not None and prev.any_above(0.0):
            return False  # feedback (e.g. a painted label) defines the view already
        return len(clicks) <= SKIP_CLICKS or state.prev_map is None

    def _auto_first(self, prepared: PreparedImage, clicks) -> Prediction:
        """Coarse pass(es) for the object's extent, then a zoom-in pass at that extent."""
        from scipy import ndimage as ndi

        rules = self.view_rules
        shape = prepared.shape
        H, W = shape
        y, x, _ = clicks[-1]
        side = self.zoom_in_target_size
        extent = None
        for grow in range(FIRST_MAX_GROW + 1):
            view = rules.window(shape, y, x, side)
            (coarse,) = self._forward([make_job(prepared, clicks, None, view)], [False], flip=False)
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
            view = rules.window(shape, y, x, self.zoom_in_target_size)
            (pred,) = self._forward([make_job(prepared, clicks, None, view)], [False])
            return pred
        roi = rules.extent_roi(shape, extent, clicks, self.first_click_expansion_ratio)
        view = rules.zoom_view(roi)
        (pred,) = self._forward([make_job(prepared, clicks, None, view)], [True])
        return pred

    # ------------------------------------------------------------------ network
    def _forward(
        self, jobs: list[Job], recomputed: list[bool], flip: bool | None = None
    ) -> list[Prediction]:
        """:func:`~napari_fcfi.inference.passes.run_passes` with this predictor's flips
        (``flip`` None: the predictor's setting)."""
        use_flip = self.flip if flip is None else bool(flip)
        transforms = FLIP_AXES[self.flip_axes] if use_flip else (((), False),)
        guided = (self.guided_filter_radius, self.guided_filter_eps)
        return run_passes(self.model, self.device, jobs, recomputed, transforms, guided)
