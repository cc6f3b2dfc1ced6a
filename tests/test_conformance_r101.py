"""Conformance of the DeepLabV3+ / ResNet-101 FCFI network with the official ``r101`` vectors.

The network is built from the official ``config.json`` through ``napari_fcfi.model.io``
(``tests/helpers_w1.py``), loaded strictly with formula-W1 weights and run on the two
network-level cases of ``shared/conformance/r101`` (``first_click`` and ``later_click``) and
on the first click of the official session (flip batch). Tolerances are the README's
recommended ones. The model is built once per test session and every case runs once
(ResNet-101 at 320x480 takes about 2 s on 2 idle threads).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers_w1 import w1_model
from napari_fcfi.model.deeplab import DeeplabModel
from napari_fcfi.model.ffcm import focus_box

CASES = ("first_click", "later_click")


@pytest.fixture(scope="module")
def r101_dir(conformance_dir):
    return conformance_dir / "r101"


@pytest.fixture(scope="module")
def keys(r101_dir):
    return json.loads((r101_dir / "keys.json").read_text())


@pytest.fixture(scope="module")
def model(conformance_dir):
    """Built from the official config through ``model.io`` (cached per test session)."""
    return w1_model(conformance_dir, "r101")


def _inputs(d: dict, new_points_dtype=torch.int64):
    image = torch.from_numpy(d["image"]).permute(2, 0, 1)[None]
    prev = torch.from_numpy(d["prev_mask"])[None, None]
    points = torch.from_numpy(d["points"])
    new_points = torch.from_numpy(d["new_points"]).to(new_points_dtype)
    return image, prev, points, new_points, float(d["gate"])


@pytest.fixture(scope="module")
def runs(model, r101_dir):
    """Reference arrays and our outputs (with the stride-4 maps) for both cases."""
    out = {}
    for case in CASES:
        d = dict(np.load(r101_dir / f"{case}.npz"))
        # the official predictor passes new_points as int64; float32 gives identical results
        dtype = torch.float32 if case == "first_click" else torch.int64
        with torch.inference_mode():
            res = model(*_inputs(d, dtype), return_lowres=True)
        out[case] = d, {k: v[0, 0].numpy() for k, v in res.items()}
    return out


def test_built_from_official_config(model):
    assert isinstance(model, DeeplabModel)
    assert model.fcfi_config["class"] == "isegm.model.is_deeplab_model.DeeplabModel"
    assert model.feature_extractor.correction_module.expansion_ratio == 0.3
    assert model.inference_defaults == {"zoom_in_target_size": 600, "zoom_in_expansion_ratio": 3.2}
    assert not model.training


def test_state_dict_names_shapes_dtypes_equal_official(model, keys):
    ours = [
        [k, list(v.shape), str(v.dtype).removeprefix("torch.")]
        for k, v in model.state_dict().items()
    ]
    assert len(ours) == len(keys) == 781
    assert ours == keys


def _assert_logits(ours, ref, what):
    scale = float(np.abs(ref).max())
    diff = np.abs(ours - ref)
    assert ours.shape == ref.shape, what
    assert diff.max() <= 1e-4 * scale, f"{what}: max|d| {diff.max():.3g} (scale {scale:.3g})"
    assert diff.mean() <= 1e-5 * scale, f"{what}: mean|d| {diff.mean():.3g} (scale {scale:.3g})"


def _assert_close(ours, ref, tol, what):
    assert ours.shape == ref.shape, what
    diff = float(np.abs(ours - ref).max())
    assert diff <= tol, f"{what}: max|d| {diff:.3g} > {tol}"


@pytest.mark.parametrize("case", CASES)
def test_instances_match_official(runs, case):
    ref, ours = runs[case]
    _assert_logits(ours["instances"], ref["instances"], "instances")
    _assert_logits(ours["lowres_instances"], ref["lowres_instances"], "lowres_instances")


@pytest.mark.parametrize("case", CASES)
def test_feedback_maps_match_official(runs, case):
    ref, ours = runs[case]
    _assert_close(ours["feedback_ffcm"], ref["updated_feedback1"], 1e-4, "feedback_ffcm")
    _assert_close(ours["lowres_feedback1"], ref["lowres_feedback1"], 1e-4, "lowres_feedback1")
    _assert_close(ours["feedback_cffm"], ref["updated_feedback2"], 1e-4, "feedback_cffm")
    _assert_close(ours["lowres_feedback2"], ref["lowres_feedback2"], 1e-4, "lowres_feedback2")


def test_feedback1_upsampling_quirk(runs):
    """r101 upsamples FFCM's output without align_corners (the others with it)."""
    ref, ours = runs["later_click"]
    low = torch.from_numpy(ours["lowres_feedback1"])[None, None]
    size = ref["updated_feedback1"].shape
    plain = F.interpolate(low, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    corners = F.interpolate(low, size=size, mode="bilinear", align_corners=True)[0, 0].numpy()
    np.testing.assert_array_equal(ours["feedback_ffcm"], plain)
    # the flag matters at the tolerance: the other choice is clearly off
    assert np.abs(corners - ref["updated_feedback1"]).max() > 1e-3


@pytest.mark.parametrize("case", CASES)
def test_disk_maps_and_focus_box_exact(model, runs, case):
    ref, ours = runs[case]
    h, w = ref["image"].shape[:2]
    disks = model.click_maps(torch.from_numpy(ref["points"]), h, w, torch.float32)
    np.testing.assert_array_equal(disks[0].numpy().astype(np.uint8), ref["disk_maps"])
    fh, fw = ours["lowres_instances"].shape
    assert (fh, fw) == ref["lowres_feedback1"].shape == (h // 4, w // 4)
    y, x, _ = ref["new_points"][0, 0]
    ratio = model.feature_extractor.correction_module.expansion_ratio
    box_in, box_feat, _ = focus_box(float(y), float(x), (h, w), (fh, fw), ratio)
    np.testing.assert_array_equal(box_in, ref["ffcm_box_input"])
    np.testing.assert_array_equal(box_feat, ref["ffcm_box_feat"])
    # outside the focus box the FFCM leaves the (resized) feedback unchanged
    y0, x0, y1, x1 = box_feat
    outside = np.ones((fh, fw), bool)
    outside[y0:y1, x0:x1] = False
    prev = torch.from_numpy(ref["prev_mask"])[None, None]
    resized = F.interpolate(prev, size=(fh, fw), mode="bilinear", align_corners=True)
    np.testing.assert_allclose(
        ours["lowres_feedback1"][outside], resized[0, 0].numpy()[outside], atol=1e-7
    )


def test_batch_of_two_cases_with_per_sample_gate(model, runs):
    """Both scenes in one batch (points padded to the same N, gate per sample)."""
    first, _ = runs["first_click"]
    later, _ = runs["later_click"]
    n = later["points"].shape[1] // 2
    pad = np.full((1, 2 * n, 3), -1, np.float32)
    pad[:, 0] = first["points"][:, 0]  # the single positive click; no negative clicks
    image = torch.cat([_inputs(first)[0], _inputs(later)[0]])
    prev = torch.cat([_inputs(first)[1], _inputs(later)[1]])
    points = torch.from_numpy(np.concatenate([pad, later["points"]]))
    new_points = torch.from_numpy(np.concatenate([first["new_points"], later["new_points"]]))
    gate = torch.tensor([0.0, 1.0])
    with torch.inference_mode():
        out = model(image, prev, points, new_points, gate)
    assert set(out) == {"instances", "feedback_ffcm", "feedback_cffm"}
    for key in out:
        assert out[key].shape == (2, 1, 320, 480)
    for i, ref in enumerate((first, later)):
        _assert_logits(out["instances"][i, 0].numpy(), ref["instances"], f"instances[{i}]")
        _assert_close(out["feedback_ffcm"][i, 0].numpy(), ref["updated_feedback1"], 1e-4, "fb1")
        _assert_close(out["feedback_cffm"][i, 0].numpy(), ref["updated_feedback2"], 1e-4, "fb2")


def test_bad_inputs_raise_value_error(model):
    image = torch.zeros(1, 3, 64, 64)
    points = torch.tensor([[[10.0, 10.0, 0.0], [-1.0, -1.0, -1.0]]])
    new_points = torch.tensor([[[10.0, 10.0, 1.0]]])
    with pytest.raises(ValueError, match="prev_mask"):
        model(image, torch.zeros(1, 1, 32, 32), points, new_points, 0.0)
    with pytest.raises(ValueError, match="image"):
        model(torch.zeros(1, 4, 64, 64), torch.zeros(1, 1, 64, 64), points, new_points, 0.0)
    with pytest.raises(ValueError, match="points"):
        model(image, torch.zeros(1, 1, 64, 64), points[0], new_points, 0.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": "resnet18"}, "resnet18"),
        ({"with_aux_output": True}, "with_aux_output"),
        ({"use_disks": False}, "use_disks"),
        ({"use_rgb_conv": True}, "use_rgb_conv"),
        ({"aspp_dropout": 1.5}, "aspp_dropout"),
    ],
)
def test_unsupported_official_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeeplabModel(**kwargs)


def test_session_first_click_network_level(model, r101_dir):
    """Click 0 of the official r101 session, replayed at network level.

    No zoom: the predictor's batch is [image, flipped image] at 300x400 and the outputs are
    flip-averaged (logits before the sigmoid). At this size the newest click maps to the
    feature grid in float32, ``int((212 / 400) * 100) = 52`` (not 53), which shows here.
    """
    d = np.load(r101_dir / "session.npz")
    image = torch.from_numpy(d["image"].astype(np.float32) / np.float32(255)).permute(2, 0, 1)
    image = torch.stack([image, torch.flip(image, dims=[2])])
    prev = torch.zeros(2, 1, *image.shape[-2:])
    points = torch.from_numpy(d["net_points_0"]).long()
    with torch.inference_mode():
        out = model(image, prev, points, torch.from_numpy(d["net_new_points_0"]), 0.0)

    def merged(key):
        m = out[key]
        return (0.5 * (m[0, 0] + torch.flip(m[1, 0], dims=[1]))).numpy()

    prob = 1 / (1 + np.exp(-merged("instances").astype(np.float64)))
    _assert_close(prob.astype(np.float32), d["prob"][0], 1e-4, "prob")
    _assert_close(merged("feedback_ffcm"), d["feedback1"][0], 1e-4, "feedback1")
    _assert_close(merged("feedback_cffm"), d["feedback2"][0], 1e-4, "feedback2")


# ------------------------------------------------------------------ architecture, training path
@pytest.mark.parametrize("dilated, strides", [(True, (4, 8, 8, 8)), (False, (4, 8, 16, 32))])
def test_resnet_stage_strides_and_stem_injection(dilated, strides):
    from napari_fcfi.model.backbones.resnet import ResNetV1s

    net = ResNetV1s("resnet50", dilated=dilated).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        feats = net(x)
        extra = torch.zeros(1, 64, 32, 48)
        extra[:, :, 5, 7] = 1.0
        injected = net(x, extra)
    for f, s, c in zip(feats, strides, net.out_channels):
        assert f.shape == (1, c, 64 // s, 96 // s)
    # the click features change the output, and a too-wide input is refused clearly
    assert not torch.equal(feats[0], injected[0])
    with pytest.raises(ValueError, match="channels"):
        net(x, torch.zeros(1, 256, 32, 48))


def test_training_forward_backward_with_soft_focus():
    """Train mode with ``is_training=True`` (soft FFCM box, (B, 3) new points) is differentiable."""
    net = DeeplabModel(aspp_dropout=0.2).train()
    image = torch.rand(2, 3, 48, 48)
    prev = torch.rand(2, 1, 48, 48)
    points = torch.tensor([[[20.0, 30.0, 0], [-1, -1, -1]], [[40.0, 10.0, 0], [30.0, 30.0, 1]]])
    new_points = torch.tensor([[20.0, 30.0, 1], [30.0, 30.0, 0]])
    out = net(image, prev, points, new_points, torch.tensor([0.0, 1.0]), is_training=True)
    loss = sum(v.mean() for v in out.values())
    loss.backward()
    for p in (
        net.maps_transform[0].weight,
        net.feature_extractor.backbone.conv1[0].weight,
        net.feature_extractor.correction_module.info_encoder[0].conv.weight,
        net.feature_extractor.feedback_fusion.fusion_encoder[0].conv.weight,
        net.head.layers[2].weight,
    ):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
