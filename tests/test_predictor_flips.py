"""Flip averaging of the Predictor: the official horizontal flip, both flips ("xy") and
both flips with their transposes ("xyt", the eight symmetries of the square).

The analytic stub network answers with the click disks, the feedback and the image, so a
flipped pass, once its answer is flipped back, equals the plain pass exactly when the
clicks were flipped with the image. A mistake in either (the image or the click
coordinates of one of the four passes) shows as a different map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.inference.settings import FLIP_AXES
from stubnet import StubNet


class RecordingStub(StubNet):
    """Records the inputs of every forward call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        self.calls.append((image.clone(), points.clone(), new_points.clone()))
        return super().forward(image, prev_mask, points, new_points, gate)


def _scene(shape=(96, 120), seed=3):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 4000, shape).astype(np.uint16)
    img[20:50, 30:80] += 3000  # not symmetric under either flip
    return img


CLICKS = [(30, 40, True), (60, 100, False), (25, 70, True)]


@pytest.mark.parametrize("zoom_in", [False, True])
def test_both_flips_give_the_plain_answer_when_the_clicks_follow_the_image(zoom_in):
    img = _scene()
    prev = np.zeros(img.shape, np.float32)
    prev[22:48, 35:75] = 0.9
    maps = {}
    for axes in ("x", "xy", "xyt"):
        pred = Predictor(
            StubNet(), device="cpu", flip_axes=axes, zoom_in=zoom_in, zoom_in_target_size=64
        )
        maps[axes] = pred.predict(img, CLICKS, prev)
    plain = Predictor(StubNet(), device="cpu", flip=False, zoom_in=zoom_in, zoom_in_target_size=64)
    ref = plain.predict(img, CLICKS, prev)
    assert ref.max() > 0.9 and ref.min() < 0.1
    np.testing.assert_allclose(maps["x"], ref, atol=1e-5)
    np.testing.assert_allclose(maps["xy"], ref, atol=1e-5)
    np.testing.assert_allclose(maps["xyt"], ref, atol=1e-5)


def test_xy_runs_four_flipped_passes_in_one_batch():
    img = _scene()
    net = RecordingStub()
    pred = Predictor(net, device="cpu", flip_axes="xy", zoom_in=False)
    pred.predict(img, CLICKS)
    (image, points, new_points) = net.calls[-1]
    assert image.shape[0] == 4
    torch.testing.assert_close(image[1], torch.flip(image[0], dims=[2]))
    torch.testing.assert_close(image[2], torch.flip(image[0], dims=[1]))
    torch.testing.assert_close(image[3], torch.flip(image[0], dims=[1, 2]))
    h, w = img.shape
    real = points[0, :, 0] >= 0
    y, x = points[0, real, 0], points[0, real, 1]
    torch.testing.assert_close(points[1, real, 1], w - 1 - x)
    torch.testing.assert_close(points[2, real, 0], h - 1 - y)
    torch.testing.assert_close(points[3, real, 0], h - 1 - y)
    torch.testing.assert_close(points[3, real, 1], w - 1 - x)
    # FFCM's focus is the newest click in every pass
    assert new_points[:, 0, :2].tolist() == [
        [25, 70],
        [25, w - 1 - 70],
        [h - 1 - 25, 70],
        [h - 1 - 25, w - 1 - 70],
    ]
    assert pred.last_prediction.points.shape[0] == 4


def test_xyt_adds_four_transposed_passes_in_a_second_batch():
    img = _scene()  # 96 x 120: a transposed pass is 120 x 96
    net = RecordingStub()
    pred = Predictor(net, device="cpu", flip_axes="xyt", zoom_in=False)
    pred.predict(img, CLICKS)
    (flipped, _, _), (transposed, points, new_points) = net.calls[-2:]
    assert flipped.shape[0] == 4 and transposed.shape[0] == 4
    for k, dims in enumerate(([], [2], [1], [1, 2])):
        torch.testing.assert_close(
            transposed[k], torch.flip(flipped[0], dims=dims).transpose(-1, -2)
        )
    h, w = img.shape
    real = points[0, :, 0] >= 0
    y, x = points[0, real, 1], points[0, real, 0]  # the plain pass, transposed
    torch.testing.assert_close(points[1, real, 0], w - 1 - x)
    torch.testing.assert_close(points[2, real, 1], h - 1 - y)
    assert new_points[:, 0, :2].tolist() == [
        [70, 25],
        [w - 1 - 70, 25],
        [70, h - 1 - 25],
        [w - 1 - 70, h - 1 - 25],
    ]
    assert pred.last_prediction.points.shape[0] == 8


def test_flip_axes_is_validated_and_read_from_the_model():
    with pytest.raises(ValueError, match="flip_axes"):
        Predictor(StubNet(), device="cpu", flip_axes="z")
    net = StubNet()
    net.inference_defaults = {"flip_axes": "diagonal"}
    with pytest.raises(ValueError, match="flip_axes.*inference_defaults"):
        Predictor(net, device="cpu")
    net.inference_defaults = {"flip_axes": "xy"}
    assert Predictor(net, device="cpu").flip_axes == "xy"
    assert Predictor(net, device="cpu", flip_axes="x").flip_axes == "x"
    assert Predictor(StubNet(), device="cpu").flip_axes == "x"  # the official default
    assert set(FLIP_AXES) == {"x", "xy", "xyt"}


def test_no_flip_is_one_pass_whatever_the_axes():
    net = RecordingStub()
    pred = Predictor(net, device="cpu", flip=False, flip_axes="xy", zoom_in=False)
    pred.predict(_scene(), CLICKS)
    assert net.calls[-1][0].shape[0] == 1


def test_the_evaluate_command_offers_every_flip_setting():
    """The command's choices are written out (its parser must not import torch): they must
    name exactly the predictor's settings."""
    import argparse

    from napari_fcfi.evaluation.cli import add_parser

    sub = argparse.ArgumentParser().add_subparsers()
    (action,) = [a for a in add_parser(sub)._actions if "--flip-axes" in a.option_strings]
    assert set(action.choices) == set(FLIP_AXES)
