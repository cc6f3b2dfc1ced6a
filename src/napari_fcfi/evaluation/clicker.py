"""The robot user of the NoC protocol: where the next click goes.

The rule is the one of the official FCFI / RITM evaluation ``Clicker`` (see
``shared/conformance/README.md``, section 3):

* false negatives ``FN = object & ~pred`` and false positives ``FP = background & pred``,
  ignore pixels (``gt == -1``) are never errors;
* both masks are padded with a 1-px zero border (the image edge counts as outside) and an
  exact Euclidean distance transform is taken, then the padding is removed;
* already-clicked pixels are set to 0;
* the click is positive when ``max(FN) > max(FP)`` (a tie is negative) and lies at the first
  pixel, in row-major order, that reaches the chosen maximum.

A perfect prediction therefore gives a negative click at (0, 0), as in the official code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..masks import squared_boundary_distance

IGNORE = -1


def split_gt(gt) -> tuple[np.ndarray, np.ndarray]:
    """``gt`` (bool mask, or int mask with 1 = object, -1 = ignore) -> (object, valid) masks."""
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"gt must be a 2-D mask, got shape {gt.shape}")
    if gt.dtype == bool:
        return gt, np.ones(gt.shape, dtype=bool)
    if not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f"gt must be a bool mask or an int mask (1/0/-1), got dtype {gt.dtype}")
    return gt == 1, gt != IGNORE


def next_click(gt, pred, clicks: Sequence = ()) -> tuple[int, int, bool]:
    """The official robot user's next click ``(y, x, is_positive)``.

    ``gt``: bool mask, or int mask where 1 is the object and -1 an ignore region (never
    clicked, never counted). ``pred``: the current binary prediction (same shape).
    ``clicks``: the clicks already placed, ``(y, x, ...)`` rows; those pixels are excluded.
    """
    obj, valid = split_gt(gt)
    pred = np.asarray(pred)
    if pred.shape != obj.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {obj.shape}")
    pred = pred.astype(bool, copy=False)
    fn = squared_boundary_distance(obj & ~pred & valid)
    fp = squared_boundary_distance(~obj & pred & valid)
    for c in clicks:
        y, x = int(c[0]), int(c[1])
        if 0 <= y < obj.shape[0] and 0 <= x < obj.shape[1]:
            fn[y, x] = 0
            fp[y, x] = 0
    fn_max, fp_max = fn.max(), fp.max()
    positive = bool(fn_max > fp_max)
    dist, best = (fn, fn_max) if positive else (fp, fp_max)
    flat = int(np.argmax(dist == best))  # first pixel at the maximum, row-major
    y, x = divmod(flat, obj.shape[1])
    return int(y), int(x), positive
