"""One object, click by click, with exact unlimited undo/redo (no Qt).

Every operation that changes the result (a click, a hand edit of the feedback, a reset)
appends an immutable step holding the clicks, the probability, the feedback for the next
click and the predictor's zoom state. Undo and redo move along that history, so they
restore all four exactly; a new operation after an undo drops the undone steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .inputs import Map, as_click_list, as_feedback
from .maps import RoiMap
from .predictor import Predictor
from .views import ZoomState


class _Step(NamedTuple):
    clicks: tuple  # ((y, x, positive), ...) chronological
    prob: Map | None  # what the user sees
    feedback: Map | None  # what the next click feeds back
    zoom: ZoomState
    action: str
    first: bool = False  # the answer to the object's first click (no feedback before it)


def _compact(m: Map | None) -> Map | None:
    """A full-size map -> only the bbox of its non-zero pixels (maps are kept per step)."""
    if m is None or not isinstance(m, RoiMap) or m.data.shape != tuple(m.shape):
        return m
    return RoiMap.from_array(m.data)


class InteractiveSession:
    """Segment one object of ``image`` with clicks.

    ``feedback``: an optional starting mask or probability map (e.g. an existing label to
    correct); it is the probability shown before the first click and the feedback of the
    first click, whose window then includes it.

    ``prior``: the starting feedback is a prior carried over from another plane (a
    propagation step), not an answer being corrected, so the answer to the first click is
    read at the first-click threshold (:meth:`Predictor.threshold_for`) like any object's
    first answer; otherwise a click on a starting feedback is a correction.

    ``add_click(y, x, positive)`` returns the new probability map. ``set_feedback(mask)``
    replaces the result with a hand-edited mask, which becomes the feedback (and the
    zoom-in reference) of the next click. ``reset()`` returns to the starting state. All
    three are undoable. Invalid input raises ``ValueError`` and changes nothing.
    """

    def __init__(self, predictor: Predictor, image, feedback=None, *, prior: bool = False):
        if not isinstance(predictor, Predictor):
            raise ValueError("predictor must be a napari_fcfi.Predictor")
        self.predictor = predictor
        self._image = predictor.prepare_image(image)
        self.shape = self._image.shape
        fb = _compact(as_feedback(feedback, self.shape))
        self._prior = bool(prior) and fb is not None
        self._start = _Step((), fb, fb, ZoomState(), "start")
        self._history: list[_Step] = [self._start]
        self._pos = 0
        self._full_cache: tuple[Map, np.ndarray] | None = None

    # ------------------------------------------------------------------ operations
    @property
    def _cur(self) -> _Step:
        return self._history[self._pos]

    def _push(self, step: _Step) -> None:
        del self._history[self._pos + 1 :]
        self._history.append(step)
        self._pos += 1

    def add_click(self, y, x, positive: bool = True) -> np.ndarray:
        """Add a click at pixel (y, x) (rounded to the nearest pixel); returns the
        probability map (float32 (H, W))."""
        self.click(y, x, positive)
        return self.probability

    def click(self, y, x, positive: bool = True) -> None:
        """:meth:`add_click` without building the image-size probability map: read the
        result with :attr:`mask_roi` or :attr:`probability_roi`, whose cost is the object's
        rectangle, not the image."""
        if not isinstance(positive, (bool, np.bool_, int, np.integer)):
            raise ValueError(f"positive must be a bool, got {positive!r}")
        (click,) = as_click_list([(y, x, bool(positive))], self.shape)
        cur = self._cur
        clicks = cur.clicks + (click,)
        pred, zoom = self.predictor.predict_roi(self._image, list(clicks), cur.feedback, cur.zoom)
        first = not cur.clicks and (
            cur.feedback is None or (self._prior and cur.feedback is self._start.feedback)
        )
        self._push(_Step(clicks, pred.prob, pred.prob, zoom, "click", first))

    def set_feedback(self, mask) -> None:
        """Replace the result by a hand-edited ``mask`` (bool or probabilities in [0, 1]);
        the next click feeds it back and zooms around it."""
        if mask is None:
            raise ValueError("mask must be a (H, W) bool mask or probability map, got None")
        fb = _compact(as_feedback(mask, self.shape))
        cur = self._cur
        self._push(_Step(cur.clicks, fb, fb, ZoomState(cur.zoom.roi, fb), "feedback"))

    def reset(self) -> None:
        """Back to the starting state (no clicks, the starting feedback); undoable."""
        self._push(self._start._replace(action="reset"))

    def undo(self) -> bool:
        """Step back; returns False when there is nothing to undo."""
        if self._pos == 0:
            return False
        self._pos -= 1
        return True

    def redo(self) -> bool:
        """Step forward again; returns False when there is nothing to redo."""
        if self._pos >= len(self._history) - 1:
            return False
        self._pos += 1
        return True

    def finish(self) -> np.ndarray:
        """The final binary mask (see :attr:`mask_roi`)."""
        return self.mask

    # ------------------------------------------------------------------ state
    @property
    def clicks(self) -> list[tuple[int, int, bool]]:
        return list(self._cur.clicks)

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._history) - 1

    @property
    def zoom_state(self) -> ZoomState:
        return self._cur.zoom

    @property
    def probability_roi(self) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """``((slice_y, slice_x), values)``: the probability is 0 outside these slices.
        Cheaper than :attr:`probability` on large images."""
        p = self._cur.prob
        return None if p is None else (p.slices, p.data)

    @property
    def probability(self) -> np.ndarray | None:
        """The current probability map, float32 (H, W), or None before anything happened.
        Read-only; copy it to modify."""
        p = self._cur.prob
        if p is None:
            return None
        if self._full_cache is None or self._full_cache[0] is not p:
            full = p.full()
            full.flags.writeable = False
            self._full_cache = (p, full)
        return self._full_cache[1]

    @property
    def mask_roi(self) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """``((slice_y, slice_x), bool values)``: the mask (``probability > threshold``, the
        predictor's threshold for the answer to a first click or to one with feedback, see
        :meth:`Predictor.threshold_for`) is False outside these slices. Costs 1 byte per
        pixel of the slices, not of the image; None before anything happened."""
        cur = self._cur
        p = cur.prob
        return None if p is None else (p.slices, p.above(self.predictor.threshold_for(cur.first)))

    @property
    def mask(self) -> np.ndarray:
        """The current binary mask, bool (H, W)."""
        out = np.zeros(self.shape, bool)
        roi = self.mask_roi
        if roi is not None:
            out[roi[0]] = roi[1]
        return out
