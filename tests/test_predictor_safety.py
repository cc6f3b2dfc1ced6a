"""Predictor: invalid settings and weights refused, any click iterable, thread-safe
``predict``, and per-click memory bounded by the network input on huge views."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_fcfi.inference.inputs import PreparedImage
from napari_fcfi.inference.maps import RoiMap
from napari_fcfi.inference.passes import make_job
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.inference.views import SAMPLE_RATIO, View
from stubnet import StubNet


def _scene(shape=(300, 400), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(100, 4000, shape).astype(np.uint16)


# ---------------------------------------------------------------- settings and weights
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"zoom_in_expansion_ratio": float("nan")}, "zoom_in_expansion_ratio"),
        ({"zoom_in_expansion_ratio": 0.0}, "zoom_in_expansion_ratio"),
        ({"zoom_in_expansion_ratio": -1.4}, "zoom_in_expansion_ratio"),
        ({"zoom_in_expansion_ratio": float("inf")}, "zoom_in_expansion_ratio"),
        ({"zoom_in_target_size": float("nan")}, "zoom_in_target_size"),
        ({"zoom_in_target_size": 0}, "zoom_in_target_size"),
        ({"zoom_in_min_crop_size": float("nan")}, "zoom_in_min_crop_size"),
        ({"zoom_in_min_crop_size": -5}, "zoom_in_min_crop_size"),
        ({"zoom_in_min_crop_size": "big"}, "zoom_in_min_crop_size"),
        ({"threshold": float("nan")}, "threshold"),
    ],
)
def test_invalid_zoom_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Predictor(StubNet(), device="cpu", **kwargs)


def test_invalid_model_defaults_are_refused_and_named():
    net = StubNet()
    net.inference_defaults = {"zoom_in_expansion_ratio": float("nan")}
    with pytest.raises(ValueError, match="inference_defaults"):
        Predictor(net, device="cpu")
    # an explicit valid value overrides the model's
    assert Predictor(net, device="cpu", zoom_in_expansion_ratio=1.5).zoom_in_expansion_ratio == 1.5


class _WeightedStub(StubNet):
    def __init__(self, value):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, value]))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(value):
    with pytest.raises(ValueError, match="'w' contains NaN or infinite"):
        Predictor(_WeightedStub(value), device="cpu")
    Predictor(_WeightedStub(2.0), device="cpu")  # finite weights are fine


def test_non_finite_network_output_warns():
    class NanOut(StubNet):
        def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
            out = super().forward(image, prev_mask, points, new_points, gate)
            out["instances"] = out["instances"] * float("nan")
            return out

    pred = Predictor(NanOut(), device="cpu")
    with pytest.warns(RuntimeWarning, match="NaN"):
        pred.predict(_scene(), [(100, 100, True)])


# ---------------------------------------------------------------- clicks
def test_a_generator_of_clicks_is_accepted():
    img = _scene()
    clicks = [(100, 120, True), (110, 140, True), (90, 100, False)]
    a = Predictor(StubNet(), device="cpu")
    b = Predictor(StubNet(), device="cpu")
    for k in range(1, len(clicks) + 1):
        pa = a.predict(img, clicks[:k])
        pb = b.predict(img, (c for c in clicks[:k]))
        np.testing.assert_array_equal(pa, pb)
    with pytest.raises(ValueError, match="at least one click"):
        a.predict(img, iter(()))
    with pytest.raises(ValueError, match="clicks must be"):
        a.predict(img, 5)


# ---------------------------------------------------------------- threads
class _SlowStub(StubNet):
    """Sleeps inside the forward pass (releasing the GIL) and records overlapping calls."""

    def __init__(self):
        super().__init__()
        self.active = 0
        self.overlaps = 0
        self.guard = threading.Lock()

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        with self.guard:
            self.active += 1
            self.overlaps += self.active > 1
        time.sleep(0.01)
        with self.guard:
            self.active -= 1
        return super().forward(image, prev_mask, points, new_points, gate)


def test_predict_is_serialised_across_threads():
    images = [_scene(seed=s) for s in range(2)]
    clicks = [[(60 + 20 * k, 80 + 25 * k, True)] for k in range(6)]
    serial = Predictor(StubNet(), device="cpu", flip=False)
    expected = [[serial.predict(img, c) for c in clicks] for img in images]

    net = _SlowStub()
    shared = Predictor(net, device="cpu", flip=False)
    got = [[None] * len(clicks) for _ in images]
    errors = []
    start = threading.Barrier(len(images))

    def work(i):
        try:
            start.wait()
            for k, c in enumerate(clicks):
                got[i][k] = shared.predict(images[i], c)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert net.overlaps == 0, "two predict() calls ran at the same time"
    for i in range(len(images)):
        for k in range(len(clicks)):
            np.testing.assert_array_equal(got[i][k], expected[i][k])


# ---------------------------------------------------------------- memory on huge views
def _reference_input(prepared, prev, view):
    """The network input as the whole box would give it: normalise, then resize."""
    r0, r1, c0, c1 = view.box
    rgb = prepared.crop(view.box)
    pm = (
        np.zeros((r1 - r0 + 1, c1 - c0 + 1), np.float32)
        if prev is None
        else prev.region(r0, r1 + 1, c0, c1 + 1)
    )
    crop = torch.from_numpy(np.concatenate([rgb.transpose(2, 0, 1), pm[None]], axis=0))
    return F.interpolate(crop[None], size=view.net_hw, mode="bilinear", align_corners=True)[0]


@pytest.mark.parametrize(
    "image,normalize",
    [
        (_scene((900, 1300), seed=3), "auto"),
        (np.random.default_rng(4).random((700, 1000, 3)).astype(np.float32), None),
        (np.random.default_rng(5).integers(0, 255, (800, 800, 2)).astype(np.uint8), "minmax"),
    ],
)
def test_sampled_view_matches_normalise_then_resize(image, normalize):
    pred = Predictor(StubNet(), device="cpu", normalize=normalize, zoom_in_target_size=150)
    prepared = PreparedImage(image, normalize)
    H, W = prepared.shape
    fb = np.zeros((H, W), np.float32)
    fb[50 : H - 40, 30 : W - 200] = np.linspace(0, 1, W - 230, dtype=np.float32)
    prev = RoiMap.from_array(fb)
    for box in [(0, H - 1, 0, W - 1), (13, H - 7, 101, W - 3)]:
        view = pred.view_rules.zoom_view(box)
        bh, bw = box[1] - box[0] + 1, box[3] - box[2] + 1
        assert view.resized and bh * bw > SAMPLE_RATIO * view.net_hw[0] * view.net_hw[1]
        for p in (None, prev):
            job = make_job(prepared, [(box[0] + 5, box[2] + 5, True)], p, view)
            assert tuple(job.crop.shape) == (4, *view.net_hw)
            ref = _reference_input(prepared, p, view)
            assert float((job.crop - ref).abs().max()) < 1e-5


def test_views_close_to_the_network_size_keep_the_exact_path():
    pred = Predictor(StubNet(), device="cpu", zoom_in_target_size=200)
    prepared = PreparedImage(_scene((400, 400)), "auto")
    view = pred.view_rules.zoom_view((0, 299, 0, 299))  # 300 -> 200: not sampled
    job = make_job(prepared, [(10, 10, True)], None, view)
    assert tuple(job.crop.shape) == (4, 300, 300)


def _peak_mb(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / 2**20, result


def test_huge_view_input_memory_is_bounded_by_the_network():
    size = 4000
    img = np.full((size, size), 500, np.uint16)
    img[1000:1100, 1000:1100] = 3000
    fb = np.zeros((size, size), np.float32)
    m = int(size * 0.05)
    fb[m : size - m, m : size - m] = 1.0  # a feedback mask over ~90 % of the image
    prev = RoiMap.from_array(fb)
    del fb
    pred = Predictor(StubNet(), device="cpu", zoom_in_target_size=256)
    prepared = pred.prepare_image(img)
    clicks = [(size // 2, size // 2, True)]
    view = pred.view_rules.first_view(prepared.shape, clicks, prev)
    assert view.resized and view.box[1] - view.box[0] > 3000
    mb, job = _peak_mb(lambda: make_job(prepared, clicks, prev, view))
    # before, the box was normalised whole: > 3600^2 x 3 float32 (150 MB) and more
    assert mb < 20, f"{mb:.1f} MB for one network input of {view.net_hw}"
    assert float(job.crop[3].min()) >= 0 and float(job.crop[3].max()) > 0.999


def test_huge_view_click_transient_memory_is_bounded():
    size = 3000
    img = _scene((size, size), seed=1)
    fb = np.zeros((size, size), np.float32)
    m = int(size * 0.05)
    fb[m : size - m, m : size - m] = 1.0
    prev = RoiMap.from_array(fb)
    del fb
    pred = Predictor(StubNet(), device="cpu", zoom_in_target_size=256)
    prepared = pred.prepare_image(img)
    clicks = [(size // 2, size // 2, True)]
    from napari_fcfi.inference.views import ZoomState

    mb, (out, _) = _peak_mb(lambda: pred.predict_roi(prepared, clicks, prev, ZoomState()))
    # numpy allocations only (the maps pasted back into the box, the click's result, are
    # torch's); normalising the whole box took > 2700^2 x 3 float32 (83 MB) several times
    assert mb < 40, f"{mb:.1f} MB of arrays for one click"
    assert isinstance(out.view, View) and out.view.resized
    r0, r1, c0, c1 = out.view.box
    assert out.prob.data.shape == (r1 - r0 + 1, c1 - c0 + 1)
