"""ScaledMap: every read equals the map that torch's bilinear resize would have pasted, and
a click on a huge view keeps its result at the network's resolution."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_fcfi.inference import views as views_module
from napari_fcfi.inference.maps import RoiMap
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.inference.resample import ScaledMap
from napari_fcfi.inference.views import ZoomState
from stubnet import StubNet

SHAPE = (700, 900)
BOX = (37, 640, 101, 870)


def _small(seed=0, hw=(41, 57)):
    rng = np.random.default_rng(seed)
    m = rng.random(hw).astype(np.float32)
    m[:5] = 0.0
    return m


def _reference(small, box=BOX, shape=SHAPE) -> RoiMap:
    r0, r1, c0, c1 = box
    t = torch.from_numpy(small)[None, None]
    big = F.interpolate(t, size=(r1 - r0 + 1, c1 - c0 + 1), mode="bilinear", align_corners=True)
    return RoiMap(shape, r0, c0, big[0, 0].numpy())


@pytest.fixture(params=[0, 1])
def pair(request, monkeypatch):
    # small strips make every reduction cross several of them
    monkeypatch.setattr("napari_fcfi.inference.resample.STRIP_PIXELS", 5000)
    small = _small(request.param)
    return ScaledMap(SHAPE, BOX, small), _reference(small)


def test_dense_reads_match_torch(pair):
    lazy, ref = pair
    assert lazy.slices == ref.slices
    np.testing.assert_allclose(lazy.data, ref.data, atol=1e-6)
    np.testing.assert_allclose(lazy.full(), ref.full(), atol=1e-6)
    assert lazy.max() == pytest.approx(ref.max(), abs=1e-6)


@pytest.mark.parametrize(
    "rect", [(0, 700, 0, 900), (30, 50, 95, 120), (600, 700, 860, 900), (0, 10, 0, 10)]
)
def test_region_matches_torch(pair, rect):
    lazy, ref = pair
    np.testing.assert_allclose(lazy.region(*rect), ref.region(*rect), atol=1e-6)


def test_take_matches_torch(pair):
    lazy, ref = pair
    rows = np.array([0, 36, 37, 38, 300, 640, 641, 699])
    cols = np.array([5, 100, 101, 500, 870, 871])
    np.testing.assert_allclose(lazy.take(rows, cols), ref.take(rows, cols), atol=1e-6)


@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.5, 0.97])
def test_thresholds_match_torch(pair, thresh):
    lazy, ref = pair
    got, want = lazy.above(thresh), ref.above(thresh)
    assert got.dtype == bool and got.shape == want.shape
    # a pixel within float32 rounding of the threshold may fall either way
    assert np.count_nonzero(got != want) <= 2
    assert lazy.bbox_above(thresh) == ref.bbox_above(thresh)
    assert lazy.any_above(thresh) == ref.any_above(thresh)


def test_empty_and_invalid_maps():
    zero = ScaledMap(SHAPE, BOX, np.zeros((20, 20), np.float32))
    assert zero.bbox_above(0.0) is None and not zero.any_above()
    with pytest.raises(ValueError, match="only enlarges"):
        ScaledMap(SHAPE, (0, 9, 0, 9), np.zeros((20, 20), np.float32))
    with pytest.raises(ValueError, match="inside"):
        ScaledMap(SHAPE, (0, 800, 0, 100), np.zeros((20, 20), np.float32))
    with pytest.raises(ValueError, match="thresh"):
        zero.bbox_above(-0.1)


def test_stored_map_is_read_only():
    small = _small()
    m = ScaledMap(SHAPE, BOX, small)
    small[:] = 0  # the caller's array is copied
    assert m.any_above()
    with pytest.raises(ValueError):
        m.small[0, 0] = 1.0
    with pytest.raises(ValueError):
        m.data[0, 0] = 1.0


# ------------------------------------------------------------------ in the predictor
def _huge_click(size=3000):
    img = np.random.default_rng(1).integers(100, 4000, (size, size)).astype(np.uint16)
    fb = np.zeros((size, size), np.float32)
    m = int(size * 0.05)
    fb[m : size - m, m : size - m] = 1.0  # a feedback mask over ~90 % of the image
    prev = RoiMap.from_array(fb)
    pred = Predictor(StubNet(), device="cpu", zoom_in_target_size=256)
    prepared = pred.prepare_image(img)
    clicks = [(size // 2, size // 2, True), (size // 2 + 40, size // 2 - 30, True)]
    return pred, prepared, clicks, prev


def test_huge_view_keeps_its_result_at_network_resolution(monkeypatch):
    pred, prepared, clicks, prev = _huge_click()
    out, state = pred.predict_roi(prepared, clicks, prev, ZoomState(None, prev))
    assert isinstance(out.prob, ScaledMap) and out.prob.small.shape == out.view.net_hw
    assert isinstance(state.prev_map, ScaledMap)
    box = out.view.box
    assert out.prob.box_shape == (box[1] - box[0] + 1, box[3] - box[2] + 1)

    # the same click with every map pasted at full resolution, as before
    monkeypatch.setattr(views_module, "SAMPLE_RATIO", 10**9)
    eager, eager_state = pred.predict_roi(prepared, clicks, prev, ZoomState(None, prev))
    assert isinstance(eager.prob, RoiMap) and eager.view == out.view
    r0, r1, c0, c1 = box
    window = (r0 + 1000, r0 + 1300, c0 + 900, c0 + 1250)
    np.testing.assert_allclose(out.prob.region(*window), eager.prob.region(*window), atol=1e-5)
    assert state.prev_map.bbox_above(0.5) == eager_state.prev_map.bbox_above(0.5)
    mask, eager_mask = out.prob.above(0.49), eager.prob.data > 0.49
    assert np.count_nonzero(mask != eager_mask) <= 0.0001 * mask.size


def test_huge_view_mask_costs_one_byte_per_box_pixel():
    pred, prepared, clicks, prev = _huge_click()
    out, state = pred.predict_roi(prepared, clicks, prev, ZoomState(None, prev))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        mask = out.prob.above(0.49)
        state.prev_map.bbox_above(0.5)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # the mask itself (1 byte per box pixel) plus a few strips; a float32 box is 4x the mask
    assert peak < mask.nbytes + 40 * 2**20, f"{peak / 2**20:.1f} MB for a {mask.shape} mask"
