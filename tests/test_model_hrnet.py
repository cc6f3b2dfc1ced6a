"""HRNet FCFI model: forward contract, input validation, options; Lite files via load_model."""

from __future__ import annotations

import pytest
import torch

from napari_fcfi.model.hrnet_model import HRNetModel
from napari_fcfi.model.io import load_model
from w1 import apply_w1


@pytest.fixture(scope="module")
def small_model():
    return apply_w1(HRNetModel(small=True)).eval()


def _inputs(b=1, h=64, w=96):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(b, 3, h, w, generator=g)
    prev = torch.rand(b, 1, h, w, generator=g)
    pts = torch.tensor([[[10.0, 20.0, 0.0], [30.0, 40.0, 1.0]]]).repeat(b, 1, 1)
    new = torch.tensor([[[30, 40, 0]]]).repeat(b, 1, 1)
    return image, prev, pts, new


@pytest.mark.parametrize("size", [(64, 96), (50, 70)])
def test_forward_contract(small_model, size):
    image, prev, pts, new = _inputs(2, *size)
    with torch.inference_mode():
        out = small_model(image, prev, pts, new, 1.0)
    assert set(out) == {"instances", "instances_aux", "feedback_ffcm", "feedback_cffm"}
    for v in out.values():
        assert v.shape == (2, 1, *size) and torch.isfinite(v).all()
    for k in ("feedback_ffcm", "feedback_cffm"):
        assert (out[k] >= 0).all() and (out[k] <= 1).all()


def test_without_aux_output():
    model = HRNetModel(small=True, with_aux_output=False).eval()
    with torch.inference_mode():
        out = model(*_inputs(), 0.0)
    assert "instances_aux" not in out


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: (a[0][:, :2],) + a[1:], "image"),
        (lambda a: (a[0], a[1][..., :-1]) + a[2:], "prev_mask"),
        (lambda a: a[:2] + (a[2][..., :2],) + a[3:], "points"),
        (lambda a: a[:3] + (torch.zeros(1, 1, 2),), "new_points"),
    ],
)
def test_bad_inputs_raise(small_model, change, match):
    args = change(_inputs())
    with pytest.raises(ValueError, match=match), torch.inference_mode():
        small_model(*args, 1.0)


@pytest.mark.parametrize(
    "kwargs", [{"use_rgb_conv": True}, {"use_disks": False}, {"clicks_groups": [1, 2]}]
)
def test_unsupported_options_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HRNetModel(small=True, **kwargs)


def test_lite_files_load_through_load_model(tmp_path):
    from napari_fcfi.model import lite

    model = lite.FCFILite().eval()
    path = lite.save_lite(model, tmp_path / "lite.safetensors", half=True)
    loaded = load_model(path, device="cpu")
    assert type(loaded) is lite.FCFILite and not loaded.training
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype, k
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-2, rtol=1e-2), k
