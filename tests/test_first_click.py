"""The object-scale first click (``first_click="auto"``) of the Predictor.

A thresholding network (bright = object) makes the expected masks exact: whatever the
object's size, the two-pass first click must see all of it and zoom in on it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_fcfi.inference.predictor import Predictor


class ThresholdNet(nn.Module):
    """Bright pixels are the object, wherever the clicks are (FCFI forward contract)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("_anchor", torch.zeros(1), persistent=False)
        self.inference_defaults = {}
        self.calls = []

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        self.calls.append(tuple(image.shape))
        logits = 40.0 * (image.mean(dim=1, keepdim=True) - 0.5)
        return {
            "instances": logits,
            "feedback_ffcm": torch.sigmoid(logits),
            "feedback_cffm": torch.sigmoid(logits),
        }


def disk_image(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disk = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return np.where(disk, 200, 20).astype(np.uint8), disk


def make(first_click, **kw):
    net = ThresholdNet()
    kw.setdefault("zoom_in_target_size", 128)
    kw.setdefault("zoom_in_min_crop_size", 32)
    kw.setdefault("zoom_in_expansion_ratio", 2.0)
    return net, Predictor(net, device="cpu", flip=False, first_click=first_click, **kw)


def iou(a, b):
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def test_large_object_is_seen_whole_with_auto_and_cut_with_window():
    image, disk = disk_image((900, 900), (450, 450), 200)  # 400 px across, window 128
    _, auto = make("auto")
    _, window = make("window")
    m_auto = auto.predict(image, [(450, 450, True)]) > 0.49
    m_win = window.predict(image, [(450, 450, True)]) > 0.49
    assert iou(m_auto, disk) > 0.97
    assert iou(m_win, disk) < 0.2  # the 128 px native window holds a small part only
    box = auto.last_prediction.view.box
    assert box[0] <= 250 and box[1] >= 650 and box[2] <= 250 and box[3] >= 650
    assert auto.last_prediction.view.zoomed


def test_small_object_is_magnified_to_the_target_size():
    image, disk = disk_image((400, 400), (200, 210), 6)
    net, pred = make("auto")
    mask = pred.predict(image, [(200, 210, True)]) > 0.49
    assert iou(mask, disk) > 0.9
    view = pred.last_prediction.view
    r0, r1, c0, c1 = view.box
    assert max(r1 - r0 + 1, c1 - c0 + 1) in (32, 33)  # the minimum crop: magnified ~4x
    assert max(view.net_hw) == 128
    # one coarse pass (native 128 window) and one zoomed pass
    assert net.calls == [(1, 3, 128, 128), (1, 3, 128, 128)]


def test_coarse_window_grows_at_most_twice():
    image, _ = disk_image((2000, 2000), (1000, 1000), 900)  # larger than every window
    net, pred = make("auto")
    pred.predict(image, [(1000, 1000, True)])
    assert len(net.calls) == 4  # 128, 320, 800 windows, then the zoomed pass


def test_empty_coarse_pass_returns_one_plain_window():
    image = np.full((300, 300), 20, np.uint8)  # nothing bright: the coarse pass is empty
    net, pred = make("auto")
    prob = pred.predict(image, [(150, 150, True)])
    assert prob.max() < 0.49
    assert len(net.calls) == 2 and not pred.last_prediction.view.zoomed


def test_auto_is_first_click_only_and_skipped_with_feedback():
    image, disk = disk_image((600, 600), (300, 300), 100)
    net, pred = make("auto")
    prob = pred.predict(image, [(300, 300, True)])
    state = pred.get_state()
    # the first click's box is not kept: the second click computes its own zoom-in ROI
    assert state.roi is None and state.prev_map is not None
    n = len(net.calls)
    pred.predict(image, [(300, 300, True), (310, 320, True)], prob)
    assert len(net.calls) == n + 1  # a later click is one pass
    assert pred.last_prediction.roi_recomputed and pred.get_state().roi is not None
    pred.reset_state()
    n = len(net.calls)
    pred.predict(image, [(300, 300, True)], disk)  # a painted label: its own view, one pass
    assert len(net.calls) == n + 1


def test_first_click_setting_is_validated_and_read_from_the_model():
    net = ThresholdNet()
    with pytest.raises(ValueError, match="first_click"):
        Predictor(net, device="cpu", first_click="twice")
    net.inference_defaults = {"first_click": "auto"}
    assert Predictor(net, device="cpu").first_click == "auto"
    assert Predictor(ThresholdNet(), device="cpu").first_click == "window"


def test_first_click_and_later_clicks_have_their_own_expansion():
    image, disk = disk_image((600, 600), (300, 300), 50)  # 101 px across
    net, pred = make("auto", zoom_in_expansion_ratio=1.5, first_click_expansion_ratio=2.0)
    prob = pred.predict(image, [(300, 300, True)])
    r0, r1, c0, c1 = pred.last_prediction.view.box
    assert 195 <= r1 - r0 + 1 <= 210 and 195 <= c1 - c0 + 1 <= 210  # 2 x 101
    pred.predict(image, [(300, 300, True), (290, 310, True)], prob)
    r0, r1, c0, c1 = pred.last_prediction.view.box
    assert 145 <= r1 - r0 + 1 <= 160 and 145 <= c1 - c0 + 1 <= 160  # 1.5 x 101
    assert iou(pred.predict(image, [(300, 300, True), (290, 310, True)], prob) > 0.49, disk) > 0.95


def test_first_click_expansion_defaults_to_the_zoom_in_ratio_and_is_validated():
    _, pred = make("auto", zoom_in_expansion_ratio=1.7)
    assert pred.first_click_expansion_ratio == 1.7
    with pytest.raises(ValueError, match="first_click_expansion_ratio"):
        make("auto", first_click_expansion_ratio=0)
    net = ThresholdNet()
    net.inference_defaults = {"first_click_expansion_ratio": -1.0}
    with pytest.raises(ValueError, match="first_click_expansion_ratio.*inference_defaults"):
        Predictor(net, device="cpu")
    net.inference_defaults = {"first_click_expansion_ratio": 2.5, "zoom_in_expansion_ratio": 1.5}
    pred = Predictor(net, device="cpu")
    assert (pred.first_click_expansion_ratio, pred.zoom_in_expansion_ratio) == (2.5, 1.5)
