"""Which part of the image the network sees for a click: :class:`View`, the zoom state
carried between clicks (:class:`ZoomState`) and the rules that choose a view
(:class:`ViewRules`, the official ZoomIn plus the bounded first-click window; see
:mod:`napari_fcfi.inference.predictor` for the whole click).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .inputs import Map
from .maps import Box, bbox_iou, clamp_bbox, expand_bbox, union_bbox

# ZoomIn settings the official evaluation leaves at their defaults
SKIP_CLICKS = 1
RECOMPUTE_THRESH_IOU = 0.5
ZOOM_PROB_THRESH = 0.5
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
        (see :mod:`napari_fcfi.inference.predictor`, **Memory**)."""
        h, w = self.box[1] - self.box[0] + 1, self.box[3] - self.box[2] + 1
        nh, nw = self.net_hw
        return h * w > SAMPLE_RATIO * nh * nw and h >= nh and w >= nw


@dataclass(frozen=True)
class ViewRules:
    """The view of a click from the zoom-in settings.

    ``target_size``: the network input's longer side for a resized view;
    ``expansion_ratio`` and ``min_crop_size``: the zoom-in ROI's growth about its centre and
    its smallest side; ``zoom_in`` False: every click uses the first-click view.
    """

    target_size: int
    expansion_ratio: float
    min_crop_size: int
    zoom_in: bool = True

    def window(self, shape, y: int, x: int, side: int) -> View:
        """A ``side`` x ``side`` window centred on (y, x), clamped; resized to the target
        size when larger."""
        H, W = shape
        wh, ww = min(side, H), min(side, W)
        y0 = min(max(y - wh // 2, 0), H - wh)
        x0 = min(max(x - ww // 2, 0), W - ww)
        box = (y0, y0 + wh - 1, x0, x0 + ww - 1)
        if max(wh, ww) > self.target_size:
            return self.zoom_view(box, zoomed=False)
        return View(box, (wh, ww), False)

    def object_roi(self, shape, clicks, prev: Map) -> Box | None:
        """Official ``get_object_roi``: bbox of (prev > 0.5) plus the clicks, expanded by
        :attr:`expansion_ratio` and clamped."""
        box = prev.bbox_above(ZOOM_PROB_THRESH)
        if box is None:
            return None
        return self.extent_roi(shape, box, clicks)

    def extent_roi(self, shape, box: Box, clicks, expansion: float | None = None) -> Box:
        """``box`` plus the clicks, expanded (``expansion`` None: :attr:`expansion_ratio`)
        to at least :attr:`min_crop_size` a side, clamped to the image."""
        for y, x, _ in clicks:
            box = union_bbox(box, (y, y, x, x))
        ratio = self.expansion_ratio if expansion is None else expansion
        return clamp_bbox(expand_bbox(box, ratio, self.min_crop_size), *shape)

    def zoom_view(self, box: Box, zoomed: bool = True) -> View:
        """``box`` resized so that its longer side is the target size."""
        h, w = box[1] - box[0] + 1, box[3] - box[2] + 1
        scale = self.target_size / max(h, w)
        return View(box, (int(round(h * scale)), int(round(w * scale))), zoomed)

    def first_view(self, shape, clicks, prev: Map | None) -> View:
        """Whole image when it fits the target size (official), else a target-size window
        at the newest click, grown to hold the feedback's zoom-in ROI (resized when it
        then exceeds the target size)."""
        H, W = shape
        t = self.target_size
        if not self.zoom_in or (H <= t and W <= t):
            return View((0, H - 1, 0, W - 1), (H, W), False)
        y, x, _ = clicks[-1]
        box = self.window(shape, y, x, t).box
        if prev is not None:
            obj = self.object_roi(shape, clicks, prev)
            if obj is not None:
                box = union_bbox(box, obj)
        if max(box[1] - box[0] + 1, box[3] - box[2] + 1) > t:
            return self.zoom_view(box, zoomed=False)
        return View(box, (box[1] - box[0] + 1, box[3] - box[2] + 1), False)

    def refine_view(self, shape, clicks, prev: Map | None) -> View:
        """An object refined from its feedback alone (no zoom state): the zoom-in ROI of
        feedback above 0.5 and the clicks, else the first-click view."""
        if self.zoom_in and prev is not None:
            roi = self.object_roi(shape, clicks, prev)
            if roi is not None:
                return self.zoom_view(roi)
        return self.first_view(shape, clicks, prev)

    def choose(self, shape, clicks, prev: Map | None, state: ZoomState):
        """-> ``(view, roi_recomputed, zoom ROI to keep)`` for the next click (official
        ZoomIn: the ROI is kept unless a click lies outside it or its IoU with the new
        candidate is below :data:`RECOMPUTE_THRESH_IOU`)."""
        if not self.zoom_in or len(clicks) <= SKIP_CLICKS or state.prev_map is None:
            return self.first_view(shape, clicks, prev), False, None
        cand = self.object_roi(shape, clicks, state.prev_map)
        if cand is None:
            return self.first_view(shape, clicks, prev), False, None
        roi, recomputed = state.roi, False
        if (
            roi is None
            or not clicks_inside(roi, clicks)
            or bbox_iou(cand, roi) < RECOMPUTE_THRESH_IOU
        ):
            roi, recomputed = cand, True
        return self.zoom_view(roi), recomputed, roi


def clicks_inside(roi: Box, clicks) -> bool:
    """Official ``check_object_roi``: rmin <= y < rmax and cmin <= x < cmax for every click."""
    return all(roi[0] <= y < roi[1] and roi[2] <= x < roi[3] for y, x, _ in clicks)
