"""FFCM / CFFM behaviour beyond the conformance vectors (small random modules, fast)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_fcfi.model.cffm import CollaborativeFusionModule
from napari_fcfi.model.ffcm import FocusedCorrectionModule, focus_box
from w1 import apply_w1

H, W, h, w, C = 64, 96, 16, 24, 8


@pytest.fixture(scope="module")
def ffcm():
    torch.manual_seed(0)
    return apply_w1(FocusedCorrectionModule(3 + 3 + 1 + C, 16, expansion_ratio=0.3)).eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, C, h, w, generator=g)
    image = torch.randn(2, 3, H, W, generator=g)
    coord = (torch.rand(2, 3, H, W, generator=g) > 0.9).float()
    fb = torch.rand(2, 1, H, W, generator=g)
    return feats, image, coord, fb


def test_focus_box_rules():
    # README examples (320x480 input, 80x120 features)
    assert focus_box(24, 35, (320, 480), (80, 120), 0.3) == (
        (0, 0, 72, 107),
        (0, 0, 18, 27),
        (6, 8),
    )
    assert focus_box(184, 225, (320, 480), (80, 120), 0.3) == (
        (136, 153, 232, 297),
        (34, 38, 58, 75),
        (46, 56),
    )
    # clamped at the bottom-right border; the click is truncated at feature resolution
    box_in, box_feat, click = focus_box(319, 479, (320, 480), (80, 120), 0.3)
    assert box_in == (271, 407, 320, 480) and box_feat == (67, 101, 80, 120)
    assert click == (79, 119)


def test_focus_box_float32_mapping():
    """Products are evaluated in float32 like the reference (official session vectors)."""
    # h18s session click 3, flipped sample at 525x700 -> 132x175 features: 440/700*175 in
    # float32 is just above 110, so the box ends at 111 (exclusive)
    assert focus_box(290, 335, (525, 700), (132, 175), 0.3)[1] == (53, 57, 93, 111)
    # r101 session click 0 at 300x400 -> 75x100 features: 212/400*100 -> 52.999996 -> 52
    assert focus_box(156, 212, (300, 400), (75, 100), 0.3)[2] == (39, 52)


def test_outside_box_unchanged_and_label_pulls_inside(ffcm, inputs):
    feats, image, coord, fb = inputs
    new = torch.tensor([[[32, 48, 1]], [[32, 48, 0]]])
    with torch.no_grad():
        out = ffcm(feats, image, coord, fb, new)
    fb_low = F.interpolate(fb, size=(h, w), mode="bilinear", align_corners=True)
    (_, (y0, x0, y1, x1), (cy, cx)) = ffcm.last_boxes[0][0]
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    assert torch.equal(out[:, :, ~mask], fb_low[:, :, ~mask])
    # at the click itself A = 1: the feedback becomes the label
    assert out[0, 0, cy, cx].item() == pytest.approx(1.0, abs=1e-5)
    assert out[1, 0, cy, cx].item() == pytest.approx(0.0, abs=1e-5)
    # inside the box the feedback moves towards the label
    assert (out[0, 0][mask] >= fb_low[0, 0][mask] - 1e-6).all()
    assert (out[1, 0][mask] <= fb_low[1, 0][mask] + 1e-6).all()


def test_encoder_crop_equals_whole_map(ffcm, inputs):
    """The receptive-field crop gives the same affinities as encoding the whole map."""
    feats, image, coord, fb = inputs
    new = torch.tensor([[[30, 50, 1]], [[5, 90, 1]]])
    with torch.no_grad():
        out = ffcm(feats, image, coord, fb, new)
        size = (h, w)
        info = torch.cat(
            [
                F.interpolate(image, size=size, mode="bilinear", align_corners=True),
                F.interpolate(coord, size=size, mode="bilinear", align_corners=True),
                F.interpolate(fb, size=size, mode="bilinear", align_corners=True),
                feats,
            ],
            1,
        )
        e = F.normalize(ffcm.info_encoder(info), dim=1)
    for i in range(2):
        _, (y0, x0, y1, x1), (cy, cx) = ffcm.last_boxes[i][0]
        a = (e[i] * e[i, :, cy : cy + 1, cx : cx + 1]).sum(0)[y0:y1, x0:x1]
        f0 = info[i, 6, y0:y1, x0:x1]
        expect = (1 - a) * f0 + a * 1.0
        assert torch.allclose(out[i, 0, y0:y1, x0:x1], expect, atol=1e-6)


def test_several_new_clicks_in_order(ffcm, inputs):
    feats, image, coord, fb = inputs
    c1 = torch.tensor([[[20, 30, 1]], [[40, 70, 0]]])
    c2 = torch.tensor([[[24, 36, 0]], [[44, 60, 1]]])
    with torch.no_grad():
        both = ffcm(feats, image, coord, fb, torch.cat([c1, c2], 1))
        step = ffcm(feats, image, coord, fb, c1)
        step = ffcm(feats, image, coord, step, c2)
        swapped = ffcm(feats, image, coord, fb, torch.cat([c2, c1], 1))
    assert torch.allclose(both, step, atol=1e-6)
    assert not torch.allclose(both, swapped, atol=1e-4)


def test_padding_rows_are_ignored(ffcm, inputs):
    feats, image, coord, fb = inputs
    one = torch.tensor([[[20, 30, 1]], [[40, 70, 0]]])
    padded = torch.cat([torch.full((2, 1, 3), -1), one], 1)
    with torch.no_grad():
        assert torch.equal(
            ffcm(feats, image, coord, fb, padded), ffcm(feats, image, coord, fb, one)
        )


def test_bad_new_points_shape(ffcm, inputs):
    feats, image, coord, fb = inputs
    with pytest.raises(ValueError, match="new_points"):
        ffcm(feats, image, coord, fb, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="new_points"):
        ffcm(feats, image, coord, fb, torch.zeros(3, 1, 3))


def test_soft_box_training(ffcm, inputs):
    feats, image, coord, fb = inputs
    pts = torch.tensor([[32.0, 48.0, 1.0], [20.0, 20.0, 0.0]])
    soft2 = ffcm(feats, image, coord, fb, pts, is_training=True)
    soft3 = ffcm(feats, image, coord, fb, pts[:, None], is_training=True)
    assert torch.allclose(soft2, soft3)
    with torch.no_grad():
        hard = ffcm(feats, image, coord, fb, pts[:, None].long())
    for i in range(2):
        _, (y0, x0, y1, x1), (cy, cx) = ffcm.last_boxes[i][0]
        # near the click the soft window is ~1: same as the hard box
        assert torch.allclose(soft2[i, 0, cy, cx], hard[i, 0, cy, cx], atol=1e-3)
    # differentiable: gradients reach the encoder and the features
    f = feats.clone().requires_grad_(True)
    ffcm.zero_grad()
    ffcm(f, image, coord, fb, pts, is_training=True).sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    assert ffcm.info_encoder[0].conv.weight.grad.abs().sum() > 0


def test_cffm_gate_and_shapes():
    cffm = apply_w1(CollaborativeFusionModule(C, 8)).eval()
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, C, h, w, generator=g)
    fb = torch.rand(2, 1, h, w, generator=g)
    with torch.no_grad():
        f0, fb2 = cffm(feats, fb, 0.0)
        f1, fb2b = cffm(feats, fb, 1.0)
        fmix, _ = cffm(feats, fb, torch.tensor([0.0, 1.0]))
    assert torch.equal(f0, feats)
    assert torch.equal(fb2, fb2b) and fb2.shape == (2, 1, h, w)
    assert ((fb2 >= 0) & (fb2 <= 1)).all()
    assert torch.equal(fmix[0], f0[0]) and torch.equal(fmix[1], f1[1])
    with pytest.raises(ValueError, match="spatial size"):
        cffm(feats, torch.rand(2, 1, h + 1, w), 1.0)
