"""Classic click-seeded segmenters from scikit-image, run in the same robot-user harness.

Both work in a window around the object, not on the whole image: the bbox of the positive
clicks, scaled by 2 about its centre with sides of at least 64 px. Seeds are disks of
radius 2 px: positive clicks are the object, negative clicks and the window's border the
background (later clicks overwrite earlier seeds). The window grows as the robot user
clicks into the missed parts of a large object. It follows neither the previous mask nor
the negative clicks, so that a result leaking into the background cannot blow the window
up to the whole image; outside the window the prediction is background, which is what a
negative click there asks for.

* ``random-walker``: :func:`skimage.segmentation.random_walker` on the grey image
  (``beta=130``), the object's probability is the walker's probability of the object seed.
* ``watershed``: :func:`skimage.segmentation.watershed` of the Sobel gradient of the
  Gaussian-smoothed (sigma 1) grey image, flooded from the same seeds; binary output.
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage import filters, segmentation
from skimage.draw import disk

from ..inference.maps import clamp_bbox, expand_bbox, union_bbox
from ..inference.normalize import to_model_rgb

WINDOW_RATIO = 2.0
WINDOW_MIN = 64
SEED_RADIUS = 2


class ClassicMethod:
    """Shared window and seed logic; subclasses implement :meth:`_segment`."""

    name = "classic"
    model = None

    def start(self, image) -> None:
        self.grey = to_model_rgb(image, "auto").mean(axis=-1)

    def start_object(self) -> None:
        pass

    def predict(self, clicks, prev_prob=None) -> np.ndarray:
        h, w = self.grey.shape
        box = None
        for y, x, positive in clicks:
            if positive:
                box = (y, y, x, x) if box is None else union_bbox(box, (y, y, x, x))
        if box is None:  # no object seed yet: nothing is segmented
            return np.zeros((h, w), np.float32)
        r0, r1, c0, c1 = clamp_bbox(expand_bbox(box, WINDOW_RATIO, WINDOW_MIN), h, w)
        win = self.grey[r0 : r1 + 1, c0 : c1 + 1]
        markers = np.zeros(win.shape, np.int32)
        markers[[0, -1], :] = 2
        markers[:, [0, -1]] = 2
        for y, x, positive in clicks:
            rr, cc = disk((y - r0, x - c0), SEED_RADIUS, shape=win.shape)
            markers[rr, cc] = 1 if positive else 2
        prob = np.zeros((h, w), np.float32)
        if (markers == 1).any():  # a later negative click may cover every object seed
            prob[r0 : r1 + 1, c0 : c1 + 1] = self._segment(win, markers)
        return prob


class RandomWalker(ClassicMethod):
    name = "random-walker"

    def _segment(self, win, markers):
        if not (markers == 0).any():
            return (markers == 1).astype(np.float32)
        with warnings.catch_warnings():
            # the conjugate-gradient solution overshoots [0, 1] by ~1e-3 at times: clip it
            warnings.filterwarnings("ignore", "The probability range is outside", UserWarning)
            full = segmentation.random_walker(
                win, markers, beta=130, mode="cg_j", return_full_prob=True
            )
        return np.clip(full[0], 0.0, 1.0).astype(np.float32)


class Watershed(ClassicMethod):
    name = "watershed"

    def _segment(self, win, markers):
        elevation = filters.sobel(filters.gaussian(win, sigma=1.0))
        return (segmentation.watershed(elevation, markers) == 1).astype(np.float32)
