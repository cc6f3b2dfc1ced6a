"""Predictor: crop-bounded cost on large images, predict_many batching, defaults, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_fcfi import InteractiveSession, Predictor
from napari_fcfi.inference import RoiMap, ZoomState, pick_device
from stubnet import StubNet


def _scene(shape=(300, 400), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(100, 4000, shape).astype(np.uint16)


class CountingStub(StubNet):
    """Records the input size of every forward call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        self.calls.append((tuple(image.shape), points.dtype, new_points.dtype, gate))
        assert torch.is_inference_mode_enabled()
        return super().forward(image, prev_mask, points, new_points, gate)


def test_large_image_clicks_cost_a_window():
    img = np.zeros((3000, 2500), np.uint16)
    img[1000:1040, 2000:2050] = 3000
    net = CountingStub()
    pred = Predictor(net, device="cpu", zoom_in_target_size=256)
    s = InteractiveSession(pred, img)
    s.add_click(1020, 2020, True)
    first = pred.last_prediction
    assert first.net_input_hw == (256, 256) and not first.view.resized
    r0, r1, c0, c1 = first.view.box
    assert r0 <= 1020 <= r1 and c0 <= 2020 <= c1
    s.add_click(1030, 2045, True)
    s.add_click(1005, 2005, False)
    for shape, *_ in net.calls:
        assert max(shape[-2:]) <= 256
    sl, crop = s.probability_roi
    assert crop.shape[0] <= 1000 and crop.shape[1] <= 1000
    prob = s.probability
    assert prob.shape == img.shape and prob[sl].sum() == pytest.approx(prob.sum())


def test_window_near_border_and_feedback_included():
    img = _scene((1200, 900))
    pred = Predictor(StubNet(), device="cpu", zoom_in_target_size=200, zoom_in_min_crop_size=50)
    pred.predict(img, [(3, 890, True)])
    assert pred.last_prediction.view.box == (0, 199, 700, 899)
    fb = np.zeros(img.shape, bool)
    fb[100:700, 300:500] = True  # a large hand-painted label
    s = InteractiveSession(pred, img, feedback=fb)
    s.add_click(400, 400, True)
    lp = pred.last_prediction
    r0, r1, c0, c1 = lp.view.box
    assert r0 <= 100 and r1 >= 699 and c0 <= 300 and c1 >= 499
    assert max(lp.net_input_hw) == 200 and lp.view.resized and lp.gate == 1.0
    assert s.probability[150:650, 320:480].min() > 0.9  # the label was fed back


def test_small_image_first_click_is_whole_image_and_official_dtypes():
    net = CountingStub()
    pred = Predictor(net, device="cpu", normalize="dtype", zoom_in_target_size=500)
    img = _scene()
    pred.predict(img, [(150, 200, True)])
    assert pred.last_prediction.view.box == (0, 299, 0, 399)
    assert net.calls[-1] == ((2, 3, 300, 400), torch.int64, torch.int64, 0.0)
    pred.predict(img, [(150, 200, True), (160, 190, True)], pred.last_prediction.prob)
    assert net.calls[-1][1:] == (torch.float64, torch.int64, 1.0)


def test_predict_many_matches_single_predictions():
    img = _scene((400, 500))
    pred = Predictor(StubNet(), device="cpu", zoom_in_target_size=300)
    fb = np.zeros(img.shape, np.float32)
    fb[100:140, 200:260] = 0.9
    requests = [
        ([(50, 60, True)], None),
        ([(120, 230, True)], fb),
        ([(120, 230, True), (135, 210, False), (110, 250, True)], fb),
        ([(300, 400, True), (310, 420, False)], None),
    ]
    got = pred.predict_many(img, requests, batch_size=2)
    assert len(got) == 4
    for (clicks, prev), (sl, crop) in zip(requests, got):
        assert crop.shape == (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
        if prev is None:
            pred.reset_state()
        else:  # an object being refined: its feedback drives the zoom at once
            pred.set_state(ZoomState(None, RoiMap.from_array(prev)))
            clicks = clicks if len(clicks) > 1 else clicks * 2
        full = pred.predict(img, clicks, prev)
        np.testing.assert_allclose(crop, full[sl], atol=1e-6)
        assert full.sum() == pytest.approx(full[sl].sum())
    # a refined object is a crop around it, not the whole image
    sl = got[1][0]
    assert sl[0].stop - sl[0].start < 400 and sl[1].stop - sl[1].start < 500


def test_predict_many_batches_the_network():
    net = CountingStub()
    pred = Predictor(net, device="cpu", zoom_in_target_size=128)
    img = _scene((600, 600))
    fb = np.zeros(img.shape, bool)
    reqs = []
    for k in range(6):
        m = fb.copy()
        m[150 + 50 * k : 170 + 50 * k, 300:330] = True  # away from the border
        reqs.append(([(160 + 50 * k, 315, True)], m))
    out = pred.predict_many(img, reqs, batch_size=4)
    assert [c[0][0] for c in net.calls] == [8, 4]  # 4 + 2 objects, doubled by the flip
    assert all(crop.max() > 0.5 for _, crop in out)


def test_predict_many_bad_request():
    pred = Predictor(StubNet(), device="cpu")
    with pytest.raises(ValueError, match="outside"):
        pred.predict_many(_scene(), [([(1000, 0, True)], None)])
    with pytest.raises(ValueError, match="pair"):
        pred.predict_many(_scene(), [[(1, 1, True)]])


def test_model_defaults_and_explicit_kwargs():
    net = StubNet()
    net.inference_defaults = {"zoom_in_target_size": 320, "zoom_in_expansion_ratio": 2.0}
    p = Predictor(net, device="cpu")
    assert (p.zoom_in_target_size, p.zoom_in_expansion_ratio, p.zoom_in_min_crop_size) == (
        320,
        2.0,
        200,
    )
    p = Predictor(net, device="cpu", zoom_in_target_size=100)
    assert p.zoom_in_target_size == 100
    with pytest.raises(ValueError, match="normalize"):
        Predictor(net, normalize="bogus")
    with pytest.raises(ValueError, match="threshold"):
        Predictor(net, threshold=2)


def test_device_pick_and_state_roundtrip():
    assert pick_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert pick_device().type == expected
    p = Predictor(StubNet())
    assert p.device == pick_device()
    img = _scene()
    p.predict(img, [(100, 100, True)])
    prob = p.predict(img, [(100, 100, True), (110, 120, True)], p.last_prediction.prob)
    state = p.get_state()
    p.reset_state()
    assert p.get_state().roi is None
    p.set_state(state)
    again = p.predict(img, [(100, 100, True), (110, 120, True), (90, 95, False)], prob)
    p.set_state(state)
    np.testing.assert_array_equal(
        again, p.predict(img, [(100, 100, True), (110, 120, True), (90, 95, False)], prob)
    )
    with pytest.raises(ValueError):
        p.set_state((None, None))


def test_normalisation_is_cached_per_image(monkeypatch):
    from napari_fcfi.inference import inputs as mod

    calls = []
    real = mod.intensity_range
    monkeypatch.setattr(mod, "intensity_range", lambda *a, **k: calls.append(1) or real(*a, **k))
    p = Predictor(StubNet(), device="cpu")
    img = _scene()
    p.predict(img, [(10, 10, True)])
    p.predict(img, [(10, 10, True), (20, 20, True)])
    assert len(calls) == 1
    s = InteractiveSession(p, img.copy())
    s.add_click(5, 5, True)
    s.add_click(6, 9, False)
    assert len(calls) == 2


def test_prediction_without_feedback_maps():
    class LogitsOnly(torch.nn.Module):
        def forward(self, image, prev_mask, points, new_points, gate):
            return {"instances": 4 * (image.mean(1, keepdim=True) - 0.5) + 2 * prev_mask}

    p = Predictor(LogitsOnly(), device="cpu", zoom_in_target_size=128)
    img = _scene((200, 200))
    prob = p.predict(img, [(50, 50, True)])
    prob = p.predict(img, [(50, 50, True), (60, 60, True)], prob)
    assert np.isfinite(prob).all() and p.last_prediction.feedback_cffm is None


def test_no_feedback_above_half_falls_back_to_the_window():
    """When the last CFFM feedback has nothing above 0.5 there is no zoom ROI: the click
    uses the first-click window (the whole image on a small one), not a stale ROI."""

    class NoFeedback(torch.nn.Module):
        def forward(self, image, prev_mask, points, new_points, gate):
            z = torch.zeros_like(prev_mask)
            return {"instances": z - 5, "feedback_ffcm": z, "feedback_cffm": z}

    p = Predictor(NoFeedback(), device="cpu", zoom_in_target_size=300)
    img = _scene((200, 250))
    prob = p.predict(img, [(50, 50, True)])
    prob = p.predict(img, [(50, 50, True), (60, 70, False)], prob)
    lp = p.last_prediction
    assert lp.roi is None and lp.view.box == (0, 199, 0, 249) and p.get_state().roi is None
    assert np.allclose(prob, 1 / (1 + np.exp(5)))
