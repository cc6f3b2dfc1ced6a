"""Predictor bookkeeping (zoom-in, flip, paste, feedback) against the official predictor
driven by the analytic stand-in network (conformance ``session_stubnet``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_fcfi import InteractiveSession, Predictor
from stubnet import StubNet

ZOOM = {"h18s": (700, 3.0), "r101": (600, 3.2)}
TOL = 1e-5


def _load(conformance_dir, name):
    d = dict(np.load(conformance_dir / name / "session_stubnet.npz"))
    meta = json.loads((conformance_dir / name / "session_stubnet.json").read_text())
    return d, meta


def _predictor(name):
    target, ratio = ZOOM[name]
    return Predictor(
        StubNet(),
        device="cpu",
        normalize=None,
        zoom_in_target_size=target,
        zoom_in_expansion_ratio=ratio,
        zoom_in_min_crop_size=200,
    )


def _check_click(k, pred, prob, d, meta):
    roi = pred.roi if pred.roi is not None else (-1, -1, -1, -1)
    assert roi == tuple(int(v) for v in d["roi"][k]), k
    assert pred.roi_recomputed == meta["per_click"][k]["roi_recomputed_this_click"], k
    assert pred.net_input_hw == tuple(int(v) for v in d["net_input_hw"][k]), k
    assert pred.gate == meta["per_click"][k]["gate"]
    ref_pts = d[f"net_points_{k}"]
    assert pred.points.shape == ref_pts.shape
    if pred.roi is None:
        assert pred.points.dtype == np.int64
        np.testing.assert_array_equal(pred.points, ref_pts)
    else:
        assert pred.points.dtype == np.float64
        np.testing.assert_allclose(pred.points, ref_pts, rtol=0, atol=1e-9)
    assert pred.new_points.dtype == np.int64
    np.testing.assert_array_equal(pred.new_points, d[f"net_new_points_{k}"])
    assert np.abs(prob - d["prob"][k]).max() <= TOL, k
    assert np.abs(pred.feedback_ffcm.full() - d["feedback1"][k]).max() <= TOL, k
    assert np.abs(pred.feedback_cffm.full() - d["feedback2"][k]).max() <= TOL, k
    np.testing.assert_array_equal(prob > 0.49, d["pred_mask"][k])


@pytest.mark.parametrize("name", ["h18s", "r101"])
def test_predictor_matches_official(conformance_dir, name):
    d, meta = _load(conformance_dir, name)
    image = d["image"].astype(np.float32) / np.float32(255)
    clicks = [(int(y), int(x), bool(p)) for y, x, p in d["clicks"]]
    predictor = _predictor(name)
    prev = None
    for k in range(len(clicks)):
        prob = predictor.predict(image, clicks[: k + 1], prev)
        assert prob.dtype == np.float32 and prob.shape == image.shape[:2]
        _check_click(k, predictor.last_prediction, prob, d, meta)
        prev = prob


@pytest.mark.parametrize("name", ["h18s", "r101"])
def test_session_matches_official(conformance_dir, name):
    d, _meta = _load(conformance_dir, name)
    image = d["image"].astype(np.float32) / np.float32(255)
    predictor = _predictor(name)
    session = InteractiveSession(predictor, image)
    assert session.probability is None
    for k, (y, x, p) in enumerate(d["clicks"]):
        prob = session.add_click(int(y), int(x), bool(p))
        assert np.abs(prob - d["prob"][k]).max() <= TOL, k
        np.testing.assert_array_equal(session.mask, d["pred_mask"][k])
        lp = predictor.last_prediction
        assert (lp.roi or (-1, -1, -1, -1)) == tuple(int(v) for v in d["roi"][k])
        assert lp.net_input_hw == tuple(int(v) for v in d["net_input_hw"][k])
        np.testing.assert_array_equal(lp.new_points, d[f"net_new_points_{k}"])
        assert np.abs(lp.feedback_cffm.full() - d["feedback2"][k]).max() <= TOL
    # the probability is 0 outside the last ROI, as in the official paste into zeros
    r0, r1, c0, c1 = (int(v) for v in d["roi"][-1])
    outside = np.ones(image.shape[:2], bool)
    outside[r0 : r1 + 1, c0 : c1 + 1] = False
    assert not session.probability[outside].any()
