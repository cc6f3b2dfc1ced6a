"""Clicks of training samples: the multi-point click set a sample starts with, and the
robot user's next click (the centre of the larger error region)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..masks import boundary_distance


def sample_points(
    target: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    max_pos: int = 3,
    max_neg: int = 3,
) -> list[tuple[int, int, bool]]:
    """Multi-point click sampler; returns chronological ``(y, x, is_positive)`` clicks.

    The first click is positive, in the object's interior (distance to the border at least
    40 % of the maximum). With some probability extra positive clicks fall anywhere inside
    the object and negative clicks on the background 3-20 px from it or on a neighbouring
    object. The first click stays first; the extras follow in random order.
    """
    dt = boundary_distance(target)
    dmax = dt.max()
    if dmax <= 0:
        raise ValueError("empty target mask")
    ys, xs = np.nonzero(dt >= max(1.0, 0.4 * dmax) if dmax >= 1.0 else dt > 0)
    i = int(rng.integers(len(ys)))
    clicks = [(int(ys[i]), int(xs[i]), True)]
    extras = []
    n_pos = int(rng.choice(max_pos, p=_decay(max_pos)))
    if n_pos:
        ys, xs = np.nonzero(dt >= 1.0)
        for j in rng.choice(len(ys), size=min(n_pos, len(ys)), replace=False):
            extras.append((int(ys[j]), int(xs[j]), True))
    n_neg = int(rng.choice(max_neg + 1, p=_decay(max_neg + 1)))
    if n_neg:
        out_dt = ndi.distance_transform_edt(~target)
        band = (out_dt >= 3) & (out_dt <= 20)
        others = (labels > 0) & ~target & (out_dt <= 40)
        for _ in range(n_neg):
            pool = others if others.any() and rng.random() < 0.4 else band
            ys, xs = np.nonzero(pool)
            if len(ys) == 0:
                continue
            j = int(rng.integers(len(ys)))
            extras.append((int(ys[j]), int(xs[j]), False))
    order = rng.permutation(len(extras))
    return clicks + [extras[j] for j in order]


def _decay(n: int) -> np.ndarray:
    """Probabilities 0.55, 0.25, 0.12, ... for 0, 1, 2, ... extra clicks."""
    p = 0.5 ** np.arange(n) + (np.arange(n) == 0) * 0.1
    return p / p.sum()


def robot_click(target: np.ndarray, pred: np.ndarray) -> tuple[int, int, bool] | None:
    """The next robot-user click: the point deepest inside the larger error region.

    Positive when that region is a false negative. ``None`` when the prediction is exact.
    """
    fn = target & ~pred
    fp = ~target & pred
    fn_dt = boundary_distance(fn)
    fp_dt = boundary_distance(fp)
    fn_max, fp_max = fn_dt.max(), fp_dt.max()
    if max(fn_max, fp_max) <= 0:
        return None
    positive = fn_max >= fp_max
    dt = fn_dt if positive else fp_dt
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return int(y), int(x), bool(positive)
