"""Object-scale training crops, several datasets, the warm start and the fixed splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_fcfi.model.lite import FCFILite, load_lite, save_lite
from napari_fcfi.splits import is_validation, modulus_for, split_names
from napari_fcfi.training.data import AugmentConfig, MixedGenerator, SampleGenerator
from napari_fcfi.training.items import Item
from napari_fcfi.training.setup import build_model, freeze_early_backbone
from napari_fcfi.training.trainer import TrainConfig


def disk_item(radius, size=600, name="d"):
    yy, xx = np.mgrid[:size, :size]
    lab = (((yy - size // 2) ** 2 + (xx - size // 2) ** 2) <= radius**2).astype(np.int32)
    img = np.where(lab > 0, 180, 30).astype(np.uint8)
    return Item(
        name,
        img,
        lab,
        (30.0, 180.0),
        np.array([1]),
        np.array([[size / 2, size / 2]]),
        np.array([2.0 * radius + 1]),
    )


@pytest.mark.parametrize("radius", [6, 40, 200])
def test_object_scale_brings_any_object_to_the_chosen_extent(radius):
    cfg = AugmentConfig(
        crop=128, scale_mode="object", canonical=(0.5, 0.5), extent_range=(0.5, 0.5)
    )
    gen = SampleGenerator([disk_item(radius)], cfg)
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = gen.sample(rng)["target"]
        rows = np.flatnonzero(t.any(axis=1))
        assert abs((rows[-1] - rows[0] + 1) - 64) <= 4  # half of the 128 px crop


def test_object_scale_is_clipped_to_the_scale_limits():
    cfg = AugmentConfig(
        crop=128,
        scale_mode="object",
        canonical=(0.5, 0.5),
        extent_range=(0.5, 0.5),
        max_scale_range=(0.5, 2.0),
    )
    gen = SampleGenerator([disk_item(5)], cfg)  # would need x5.8: clipped to x2
    t = gen.sample(np.random.default_rng(0))["target"]
    rows = np.flatnonzero(t.any(axis=1))
    assert abs((rows[-1] - rows[0] + 1) - 22) <= 3


def test_image_scale_mode_keeps_native_size():
    gen = SampleGenerator([disk_item(20)], AugmentConfig(crop=128, scale_range=(1.0, 1.0)))
    t = gen.sample(np.random.default_rng(1))["target"]
    rows = np.flatnonzero(t.any(axis=1))
    assert 41 * 0.8 <= rows[-1] - rows[0] + 1 <= 41 * 1.25


def test_mixed_generator_follows_its_weights():
    a = SampleGenerator([disk_item(10, name="a")], AugmentConfig(crop=64))
    b = SampleGenerator([disk_item(10, name="b")], AugmentConfig(crop=64))
    rng = np.random.default_rng(0)
    names = [MixedGenerator([a, b], [3, 1]).sample(rng)["name"] for _ in range(200)]
    assert 0.65 < names.count("a") / 200 < 0.85
    with pytest.raises(ValueError, match="weight"):
        MixedGenerator([a, b], [1])
    with pytest.raises(ValueError, match="sum to 0"):
        MixedGenerator([a, b], [0, 0])


def test_warm_start_copies_every_matching_parameter(tmp_path):
    torch.manual_seed(0)
    src = FCFILite()
    path = save_lite(src, tmp_path / "src.safetensors")
    cfg = TrainConfig(
        images="x",
        labels="y",
        out="o.safetensors",
        init=str(path),
        model_params={"half_res_refine": True},
    )
    model = build_model(cfg)
    assert model.half_res_refine and "half_res_refine" in model.params
    own = model.state_dict()
    for k, v in src.state_dict().items():
        assert torch.equal(own[k], v), k
    assert all(k in own for k in ("refine.0.conv.weight", "refine.2.weight"))
    # the new head starts as a plain upsampling: same output as the source network
    x = torch.rand(1, 3, 64, 64)
    prev = torch.zeros(1, 1, 64, 64)
    pts = torch.tensor([[[32.0, 32.0, 0.0], [-1.0, -1.0, -1.0]]])
    src.eval()
    model.eval()
    with torch.no_grad():
        a = src(x, prev, pts)["instances"]
        b = model(x, prev, pts)["instances"]
    # (two bilinear steps, 1/4 -> 1/2 -> 1, instead of one: equal up to interpolation)
    assert float((a - b).abs().max()) < 0.05 * float(a.abs().max())
    # saved and loaded with its new part
    back = load_lite(save_lite(model, tmp_path / "new.safetensors"))
    assert back.half_res_refine


def test_freeze_early_backbone():
    model = FCFILite()
    n = freeze_early_backbone(model, 3)
    frozen = {k for k, p in model.named_parameters() if not p.requires_grad}
    assert n == len(frozen) > 0
    assert all(
        k.startswith(
            (
                "backbone._conv_stem",
                "backbone._bn0",
                "backbone._blocks.0.",
                "backbone._blocks.1.",
                "backbone._blocks.2.",
            )
        )
        for k in frozen
    )
    assert freeze_early_backbone(FCFILite(), 0) == 0


def test_fixed_splits_per_dataset():
    names = [f"set{i:02d}.tif" for i in range(1, 41)]
    _, val = split_names(names, modulus=8)
    assert val == ["set02.tif", "set04.tif", "set12.tif", "set25.tif", "set27.tif", "set39.tif"]
    assert is_validation("63d981a107091e1e")  # the DSB2018 rule is unchanged
    assert modulus_for("/data/usiigaci/images") == 8
    assert modulus_for("/data/dsb2018/train/images") == 10
    with pytest.raises(ValueError):
        is_validation("x", modulus=1)


@pytest.mark.parametrize("dtype, high", [(np.uint8, 180), (np.uint16, 30000), (np.float32, 3.5)])
def test_augmented_crops_keep_contrast_whatever_the_dtype(dtype, high):
    """Simulated 16-bit cameras, noise and blur never wash a crop out (a 16-bit input used
    to saturate the simulated camera and give black crops)."""
    item = disk_item(30)
    item.image = np.where(item.labels > 0, high, high / 6).astype(dtype)
    item.intensity = (float(high / 6), float(high))
    cfg = AugmentConfig(crop=96, scale_mode="object", p_16bit=1.0, p_noise=0.5)
    gen = SampleGenerator([item], cfg)
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = gen.sample(rng)
        img, t = s["image"].mean(axis=0), s["target"]
        assert img[t].mean() - img[~t].mean() > 0.3


def test_simulated_clicks_mix_first_and_later_clicks_in_one_batch():
    from napari_fcfi.training.simulation import simulate_clicks

    torch.manual_seed(0)
    model = FCFILite().train()
    images = torch.rand(3, 3, 64, 64)
    targets = [np.zeros((64, 64), bool) for _ in range(3)]
    for t in targets:
        t[20:44, 20:44] = True
    clicks = [[(32, 32, True)] for _ in range(3)]
    prev, gate = simulate_clicks(model, images, targets, clicks, [0, 2, 1])
    assert [len(c) for c in clicks] == [1, 3, 2]
    assert gate.tolist() == [0.0, 1.0, 1.0]
    assert float(prev[0].abs().max()) == 0.0 and float(prev[1].max()) > 0
    assert model.training  # back in training mode


def test_precise_bn_replaces_the_running_statistics():
    from napari_fcfi.training.simulation import recalibrate_bn

    torch.manual_seed(0)
    model = FCFILite()
    gen = SampleGenerator([disk_item(12, size=200)], AugmentConfig(crop=64))
    cfg = TrainConfig(images="x", labels="y", out="o.safetensors", batch=2, crop=64)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in bns]
    momenta = [m.momentum for m in bns]
    recalibrate_bn(model, gen, np.random.default_rng(0), cfg, batches=2)
    assert [m.momentum for m in bns] == momenta  # restored
    assert int(bns[0].num_batches_tracked) == 2
    assert any(not torch.equal(a, m.running_mean) for a, m in zip(before, bns))


def test_the_object_span_reaches_the_training_crops():
    from napari_fcfi.training.trainer import training_generator

    cfg = TrainConfig(
        images="i",
        labels="l",
        out="o.safetensors",
        crop=128,
        scale_mode="object",
        object_span=(0.25, 0.25),
    )
    gen = training_generator(cfg, [("disks", [disk_item(20)], [])])
    assert gen.generators[0].cfg.canonical == (0.25, 0.25)
    rng = np.random.default_rng(0)
    spans = []
    for _ in range(40):
        t = gen.sample(rng)["target"]
        rows = np.flatnonzero(t.any(axis=1))
        spans.append(rows[-1] - rows[0] + 1)
    # half of the crops show the disk across a quarter of the crop (32 px), the rest 8-90 %
    assert np.mean(np.abs(np.array(spans) - 32) <= 2) >= 0.35
