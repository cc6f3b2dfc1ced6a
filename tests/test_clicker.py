"""The robot user against the official Clicker answers (conformance section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fcfi.evaluation import next_click


@pytest.fixture(scope="module")
def cases(conformance_dir):
    return dict(np.load(conformance_dir / "clicker.npz"))


def test_all_clicker_cases_exact(cases):
    n = len(cases["gt_mask"])
    assert n == 30
    for i in range(n):
        prev = cases["prev_clicks"][i][: cases["num_prev_clicks"][i]]
        got = next_click(cases["gt_mask"][i], cases["pred_mask"][i], [tuple(r) for r in prev])
        want = tuple(int(v) for v in cases["next_click"][i])
        assert (got[0], got[1], int(got[2])) == want, (i, cases["pred_kind"][i], got, want)


def test_exclusion_matters(cases):
    """Without excluding clicked pixels some chained cases come out differently."""
    differs = 0
    for i in range(len(cases["gt_mask"])):
        k = cases["num_prev_clicks"][i]
        if k == 0:
            continue
        got = next_click(cases["gt_mask"][i], cases["pred_mask"][i], [])
        if (got[0], got[1], int(got[2])) != tuple(int(v) for v in cases["next_click"][i]):
            differs += 1
    assert differs > 0


def test_perfect_prediction_is_negative_at_origin():
    gt = np.zeros((10, 12), bool)
    gt[3:7, 4:9] = True
    assert next_click(gt, gt.copy(), [(0, 0, False)]) == (0, 0, False)


def test_ignore_region_never_clicked():
    gt = np.zeros((20, 20), np.int8)
    gt[5:15, 5:15] = 1
    gt[5:15, 5:10] = -1  # left half of the object is ignored
    y, x, pos = next_click(gt, np.zeros((20, 20), bool))
    assert pos and gt[y, x] == 1


def test_bool_gt_and_tie_is_negative():
    gt = np.zeros((9, 9), bool)
    gt[1:4, 1:4] = True  # FN square of radius 2
    pred = np.zeros((9, 9), bool)
    pred[5:8, 5:8] = True  # FP square of the same size -> tie
    y, x, pos = next_click(gt, pred)
    assert (y, x, pos) == (6, 6, False)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        next_click(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
