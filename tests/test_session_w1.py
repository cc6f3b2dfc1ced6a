"""The real FCFI networks (formula-W1 weights) driven click by click through an
InteractiveSession, against the official predictor (conformance ``session``).

The networks come from ``tests/helpers_w1.py`` (``w1_model(conformance_dir, name)``),
written by the model side; these tests fail, not skip, while it is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_fcfi import InteractiveSession, Predictor

ZOOM = {"h18s": (700, 3.0), "r101": (600, 3.2)}
# README "Recommended tolerances"
TOL = {
    "h18s": {"prob_max": 5e-2, "prob_mean": 1e-4, "fb": 2e-2},
    "r101": {"prob_max": 1e-4, "prob_mean": 1e-4, "fb": 1e-4},
}


@pytest.mark.parametrize("name", ["h18s", "r101"])
def test_real_model_session(conformance_dir, name):
    from helpers_w1 import w1_model  # noqa: PLC0415 (fails loudly while missing)

    d = dict(np.load(conformance_dir / name / "session.npz"))
    meta = json.loads((conformance_dir / name / "session.json").read_text())
    target, ratio = ZOOM[name]
    assert meta["parameters"]["zoom_in"]["target_size"] == target
    assert meta["parameters"]["zoom_in"]["expansion_ratio"] == ratio
    predictor = Predictor(
        w1_model(conformance_dir, name),
        device="cpu",
        normalize=None,
        zoom_in_target_size=target,
        zoom_in_expansion_ratio=ratio,
        zoom_in_min_crop_size=meta["parameters"]["zoom_in"]["min_crop_size"],
    )
    image = d["image"].astype(np.float32) / np.float32(255)
    session = InteractiveSession(predictor, image)
    tol = TOL[name]
    for k, (y, x, p) in enumerate(d["clicks"]):
        prob = session.add_click(int(y), int(x), bool(p))
        lp = predictor.last_prediction
        assert (lp.roi or (-1, -1, -1, -1)) == tuple(int(v) for v in d["roi"][k]), k
        assert lp.net_input_hw == tuple(int(v) for v in d["net_input_hw"][k]), k
        np.testing.assert_array_equal(lp.new_points, d[f"net_new_points_{k}"])
        np.testing.assert_allclose(lp.points, d[f"net_points_{k}"], rtol=0, atol=1e-9)
        diff = np.abs(prob - d["prob"][k])
        assert diff.max() <= tol["prob_max"], (k, diff.max())
        assert diff.mean() <= tol["prob_mean"], (k, diff.mean())
        agree = np.mean(session.mask == d["pred_mask"][k])
        assert agree >= 0.9999, (k, agree)
        for key, ref in (("feedback_ffcm", "feedback1"), ("feedback_cffm", "feedback2")):
            fb = getattr(lp, key).full()
            assert np.abs(fb - d[ref][k]).max() <= tol["fb"], (k, key)
    # undo to the first click and redo: exact
    final = session.probability.copy()
    for _ in range(3):
        session.undo()
    assert session.clicks == [tuple(int(v) for v in d["clicks"][0][:2]) + (True,)]
    for _ in range(3):
        session.redo()
    np.testing.assert_array_equal(session.probability, final)
