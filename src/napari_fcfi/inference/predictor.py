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

2. **Flip.** With ``flip=True`` the batch is ``[x, flip(x)]`` (clicks ``x -> W - x - 1``);
   the two logit maps are averaged, ``0.5 * (a + flip(b))``, *before* the sigmoid.
3. **Paste.** Sigmoid, then the map is resized back to the view (bilinear,
   ``align_corners=True``) and pasted into zeros: the probability is exactly 0 outside the
   view. The two feedback maps get the same flip and paste, without the sigmoid.

``points`` go to the network as int64 while the view is not resized and as float64 once it
is (fractional coordinates); ``new_points`` (the newest click, FFCM's focus) are always
int64, truncated. The gate is 0 when there is no feedback (``prev_prob`` None or all
zero) and 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..model.clicks import points_array
from .maps import Box, RoiMap, bbox, bbox_iou, clamp_bbox, expand_bbox, union_bbox
from .normalize import POLICIES, intensity_range, to_model_rgb, validate_image

# ZoomIn settings the official evaluation leaves at their defaults
SKIP_CLICKS = 1
RECOMPUTE_THRESH_IOU = 0.5
ZOOM_PROB_THRESH = 0.5
# fallbacks when neither the caller nor ``model.inference_defaults`` set them
DEFAULT_ZOOM = {
    "zoom_in_target_size": 400,
    "zoom_in_expansion_ratio": 1.4,
    "zoom_in_min_crop_size": 200,
}


class ZoomState(NamedTuple):
    """The zoom-in state carried from one click to the next (immutable).

    ``roi``: the current zoom ROI ``(rmin, rmax, cmin, cmax)`` inclusive, or None;
    ``prev_map``: the last pasted ``feedback_cffm`` (drives the next ROI), or None.
    """

    roi: Box | None = None
    prev_map: RoiMap | None = None


@dataclass(frozen=True)
class View:
    """The region the network sees: ``box`` (inclusive) resized to ``net_hw``."""

    box: Box
    net_hw: tuple[int, int]
    zoomed: bool  # True for an official zoom-in ROI

    @property
    def resized(self) -> bool:
        return (self.box[1] - self.box[0] + 1, self.box[3] - self.box[2] + 1) != self.net_hw


@dataclass(frozen=True)
class Prediction:
    """Everything one click produced (``Predictor.last_prediction``)."""

    prob: RoiMap
    feedback_ffcm: RoiMap | None
    feedback_cffm: RoiMap | None
    view: View
    roi_recomputed: bool
    points: np.ndarray  # (2 or 1, 2N, 3) as passed to the network (original, flipped)
    new_points: np.ndarray  # (2 or 1, 1, 3) int64
    points_dtype: torch.dtype
    gate: float

    @property
    def roi(self) -> Box | None:
        """The official zoom-in ROI of this click, None when not zoomed."""
        return self.view.box if self.view.zoomed else None

    @property
    def net_input_hw(self) -> tuple[int, int]:
        return self.view.net_hw


class PreparedImage:
    """An image validated once, with its normalisation range cached; crops are normalised
    on demand, so a click costs the crop, not the image."""

    def __init__(self, image, normalize="auto"):
        if normalize not in POLICIES:
            raise ValueError(f"unknown normalize policy {normalize!r}; choose one of {POLICIES}")
        arr = validate_image(image)
        if normalize is None:
            to_model_rgb(arr[:1, :1], None)  # checks the pass-through contract
            self.intensity = None
        else:
            self.intensity = intensity_range(arr, normalize)
        self.raw = arr
        self.normalize = normalize
        self.shape = (int(arr.shape[0]), int(arr.shape[1]))

    def crop(self, box: Box) -> np.ndarray:
        """Model RGB float32 (h, w, 3) of the inclusive box."""
        r0, r1, c0, c1 = box
        part = self.raw[r0 : r1 + 1, c0 : c1 + 1]
        return to_model_rgb(part, self.normalize, intensity=self.intensity)


def pick_device(device=None) -> torch.device:
    """``device`` as given, else CUDA, then Apple MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    from ..model.io import default_device

    return default_device()


def _as_click_list(clicks, shape) -> list[tuple[int, int, bool]]:
    """Validate chronological ``(y, x, is_positive)`` clicks; coordinates round to pixels."""
    if clicks is None or len(clicks) == 0:
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


def as_feedback(prev, shape) -> RoiMap | None:
    """Validate a feedback map (probabilities in [0, 1] or a binary mask) of image ``shape``."""
    if prev is None:
        return None
    if isinstance(prev, RoiMap):
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


@dataclass
class _Job:
    """One object's network input, prepared on the CPU."""

    view: View
    clicks: list  # transformed clicks (y, x, index, positive), floats or ints
    crop: torch.Tensor  # (4, h, w) image + prev, at the view's box size
    gate: float
    full_shape: tuple[int, int]


class Predictor:
    """FCFI inference for one object at a time (see the module docstring for the rules).

    Parameters: ``model`` follows the forward contract of :mod:`napari_fcfi.model`;
    ``device`` None picks CUDA, MPS, CPU; ``zoom_in`` and ``flip`` switch the two test-time
    transforms; ``threshold`` binarises (``prob > threshold``); ``normalize`` is the image
    policy of :mod:`napari_fcfi.inference.normalize` (None: the image is already float RGB
    in [0, 1]). The ``zoom_in_*`` settings default to ``model.inference_defaults`` and then
    to 400 / 1.4 / 200 (the official ZoomIn defaults).
    """

    def __init__(
        self,
        model,
        device=None,
        zoom_in: bool = True,
        flip: bool = True,
        threshold: float = 0.49,
        normalize="auto",
        zoom_in_target_size: int | None = None,
        zoom_in_expansion_ratio: float | None = None,
        zoom_in_min_crop_size: int | None = None,
    ):
        if normalize not in POLICIES:
            raise ValueError(f"unknown normalize policy {normalize!r}; choose one of {POLICIES}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        defaults = dict(DEFAULT_ZOOM)
        defaults.update(
            {
                k: v
                for k, v in (getattr(model, "inference_defaults", None) or {}).items()
                if k in DEFAULT_ZOOM
            }
        )
        given = {
            "zoom_in_target_size": zoom_in_target_size,
            "zoom_in_expansion_ratio": zoom_in_expansion_ratio,
            "zoom_in_min_crop_size": zoom_in_min_crop_size,
        }
        settings = {k: (defaults[k] if v is None else v) for k, v in given.items()}
        self.zoom_in_target_size = int(settings["zoom_in_target_size"])
        self.zoom_in_expansion_ratio = float(settings["zoom_in_expansion_ratio"])
        self.zoom_in_min_crop_size = int(settings["zoom_in_min_crop_size"])
        if self.zoom_in_target_size < 1 or self.zoom_in_expansion_ratio <= 0:
            raise ValueError("zoom_in_target_size must be >= 1 and zoom_in_expansion_ratio > 0")
        self.zoom_in = bool(zoom_in)
        self.flip = bool(flip)
        self.threshold = float(threshold)
        self.normalize = normalize
        self._state = ZoomState()
        self._prepared: PreparedImage | None = None
        self._prepared_src = None
        self.last_prediction: Prediction | None = None

    # ------------------------------------------------------------------ state and image
    def get_state(self) -> ZoomState:
        """Snapshot of the zoom state (immutable; safe to keep for undo)."""
        return self._state

    def set_state(self, state: ZoomState) -> None:
        if not isinstance(state, ZoomState):
            raise ValueError("state must be a ZoomState from get_state()")
        self._state = state

    def reset_state(self) -> None:
        """Forget the zoom ROI and the previous feedback (a new object starts)."""
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
        if self._prepared is not None and self._prepared_src is image:
            return self._prepared
        prepared = PreparedImage(image, self.normalize)
        self._prepared, self._prepared_src = prepared, image
        return prepared

    # ------------------------------------------------------------------ public API
    def predict(self, image, clicks, prev_prob=None) -> np.ndarray:
        """Probability map (float32 (H, W)) for the chronological ``clicks``.

        ``prev_prob``: the feedback (the previous probability map, or a binary mask such as
        a hand-edited label); None means no feedback (gate 0). The zoom state is carried
        from call to call; a single click starts a new object.
        """
        prepared = self.prepare_image(image)
        clicks = _as_click_list(clicks, prepared.shape)
        prev = as_feedback(prev_prob, prepared.shape)
        pred, state = self.predict_roi(prepared, clicks, prev, self._state)
        self._state = state
        return pred.prob.full()

    def predict_roi(
        self, prepared: PreparedImage, clicks, prev: RoiMap | None, state: ZoomState
    ) -> tuple[Prediction, ZoomState]:
        """Functional core of :meth:`predict`: validated inputs in, ``(Prediction, new
        zoom state)`` out; neither the predictor nor the inputs are modified (besides
        ``last_prediction``)."""
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
            clicks = _as_click_list(clicks, prepared.shape)
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

    # ------------------------------------------------------------------ views
    def _object_roi(self, shape, clicks, prev: RoiMap) -> Box | None:
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

    def _first_view(self, shape, clicks, prev: RoiMap | None) -> View:
        """Whole image when it fits the target size (official), else a window (see module
        docstring)."""
        H, W = shape
        t = self.zoom_in_target_size
        if not self.zoom_in or (H <= t and W <= t):
            return View((0, H - 1, 0, W - 1), (H, W), False)
        y, x, _ = clicks[-1]
        wh, ww = min(t, H), min(t, W)
        y0 = min(max(y - wh // 2, 0), H - wh)
        x0 = min(max(x - ww // 2, 0), W - ww)
        box = (y0, y0 + wh - 1, x0, x0 + ww - 1)
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
    def _make_job(self, prepared: PreparedImage, clicks, prev: RoiMap | None, view: View) -> _Job:
        r0, r1, c0, c1 = view.box
        rgb = prepared.crop(view.box)
        if prev is None:
            pm = np.zeros((r1 - r0 + 1, c1 - c0 + 1), np.float32)
            gate = 0.0
        else:
            pm = prev.region(r0, r1 + 1, c0, c1 + 1)
            gate = 1.0 if prev.max() > 0 else 0.0
        crop = torch.from_numpy(np.concatenate([rgb.transpose(2, 0, 1), pm[None]], axis=0))
        nh, nw = view.net_hw
        if view.resized or view.zoomed:
            hh, ww = r1 - r0 + 1, c1 - c0 + 1
            tclicks = [
                (nh * (y - r0) / hh, nw * (x - c0) / ww, i, p) for i, (y, x, p) in enumerate(clicks)
            ]
        else:
            tclicks = [(y - r0, x - c0, i, p) for i, (y, x, p) in enumerate(clicks)]
        return _Job(view, tclicks, crop, gate, prepared.shape)

    def _forward(self, jobs: list[_Job], recomputed: list[bool]) -> list[Prediction]:
        """Run one batch of jobs that share the network input size and the gate."""
        nh, nw = jobs[0].view.net_hw
        gate = jobs[0].gate
        float_coords = any(j.view.resized or j.view.zoomed for j in jobs)
        batch_clicks = [[(y, x, p) for y, x, _, p in j.clicks] for j in jobs]
        if self.flip:
            batch_clicks += [[(y, nw - x - 1, p) for y, x, p in bc] for bc in batch_clicks]
        n = max(max(sum(p for *_, p in bc), sum(not p for *_, p in bc), 1) for bc in batch_clicks)
        points = np.stack([_padded_points(bc, n) for bc in batch_clicks])
        new_points = np.asarray(
            [[[y, x, 1.0 if p else 0.0]] for y, x, p in (bc[-1] for bc in batch_clicks)]
        )
        pdtype = torch.float64 if float_coords else torch.int64
        dev = self.device
        with torch.inference_mode():
            parts = []
            for j in jobs:
                c = j.crop[None].to(dev)
                if j.view.resized:
                    c = F.interpolate(c, size=(nh, nw), mode="bilinear", align_corners=True)
                parts.append(c)
            x = torch.cat(parts)
            if self.flip:
                x = torch.cat([x, torch.flip(x, dims=[3])])
            if not float_coords:
                pts = torch.from_numpy(points.astype(np.int64)).to(dev)
            elif dev.type == "mps":  # no float64 on Apple GPUs
                pts = torch.from_numpy(points.astype(np.float32)).to(dev)
            else:
                pts = torch.from_numpy(points).to(dev)
            # int64 casts truncate toward zero, as the official predictor's tensor cast
            newp = torch.from_numpy(new_points.astype(np.int64)).to(dev)
            out = self.model(x[:, :3], x[:, 3:4], pts, newp, gate)
            maps = {"instances": out["instances"]}
            for key in ("feedback_ffcm", "feedback_cffm"):
                if out.get(key) is not None:
                    maps[key] = out[key]
            b = len(jobs)
            merged = {}
            for key, m in maps.items():
                m = m.float()
                if m.shape[-2:] != (nh, nw):
                    m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=True)
                if self.flip:
                    m = 0.5 * (m[:b] + torch.flip(m[b:], dims=[3]))
                if key == "instances":
                    m = torch.sigmoid(m)
                merged[key] = m
            results = []
            pts_np = pts.cpu().numpy()
            newp_np = newp.cpu().numpy()
            nb = 2 if self.flip else 1
            for i, job in enumerate(jobs):
                r0, r1, c0, c1 = job.view.box
                pasted = {}
                for key, m in merged.items():
                    mi = m[i : i + 1]
                    if job.view.resized or job.view.zoomed:
                        mi = F.interpolate(
                            mi, size=(r1 - r0 + 1, c1 - c0 + 1), mode="bilinear", align_corners=True
                        )
                    pasted[key] = RoiMap(job.full_shape, r0, c0, mi[0, 0].cpu().numpy())
                sel = [i + k * b for k in range(nb)]
                results.append(
                    Prediction(
                        prob=pasted["instances"],
                        feedback_ffcm=pasted.get("feedback_ffcm"),
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


def _padded_points(clicks, n: int) -> np.ndarray:
    """One batch element's official (2n, 3) layout, padded to ``n`` rows per group."""
    pts = points_array([(y, x, p) for y, x, p in clicks])
    k = pts.shape[0] // 2
    pad = np.full((n - k, 3), -1.0)
    return np.concatenate([pts[:k], pad, pts[k:], pad])


def _clicks_inside(roi: Box, clicks) -> bool:
    """Official ``check_object_roi``: rmin <= y < rmax and cmin <= x < cmax for every click."""
    return all(roi[0] <= y < roi[1] and roi[2] <= x < roi[3] for y, x, _ in clicks)
