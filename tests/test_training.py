"""Training pipeline: data, click sampling, losses, a tiny run, resume, fine-tuning, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.draw import disk

from _training_helpers import write_dataset
from napari_fcfi.model.lite import BUILTIN_WEIGHTS, FCFILite, load_lite, save_lite
from napari_fcfi.training.clicks import robot_click, sample_points
from napari_fcfi.training.data import AugmentConfig, SampleGenerator
from napari_fcfi.training.items import load_items, split_ids
from napari_fcfi.training.losses import normalized_focal_loss, soft_focus_weight, soft_iou_loss
from napari_fcfi.training.trainer import TrainConfig, compute_losses, train


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data")


@pytest.fixture
def init_weights(tmp_path):
    torch.manual_seed(0)
    return save_lite(FCFILite(), tmp_path / "init.safetensors")


def test_split_ids_uses_project_split():
    from napari_fcfi.splits import is_validation

    ids = [f"{i:016x}" for i in range(200)]
    train_ids, val_ids = split_ids(ids)
    assert val_ids == [i for i in ids if is_validation(i)]
    assert set(train_ids).isdisjoint(val_ids) and len(train_ids) + len(val_ids) == 200
    tr, va = split_ids(ids, 0.25)
    assert 25 < len(va) < 75 and split_ids(ids, 0.25) == (tr, va)
    assert split_ids(ids, 0.0) == (ids, [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_ids(ids, 1.5)


@pytest.mark.parametrize("rgb,dtype", [(False, np.uint8), (True, np.uint8), (False, np.uint16)])
def test_sample_generator(tmp_path, rgb, dtype):
    images, labels = write_dataset(tmp_path / "d", rgb=rgb, dtype=dtype)
    items = load_items(images, labels)
    assert [len(it.objects) for it in items] == [3, 3]
    gen = SampleGenerator(items, AugmentConfig(crop=64))
    rng = np.random.default_rng(0)
    for _ in range(10):
        s = gen.sample(rng)
        assert s["image"].shape == (3, 64, 64) and s["image"].dtype == np.float32
        assert 0 <= s["image"].min() and s["image"].max() <= 1
        assert s["target"].sum() >= 6
        # the target is one instance of the crop's labels
        assert np.unique(s["labels"][s["target"]]).size == 1


def test_load_items_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="no image"):
        load_items(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValueError, match="not a directory"):
        load_items(tmp_path / "missing", tmp_path / "b")


def test_sample_points_and_robot_click():
    rng = np.random.default_rng(1)
    labels = np.zeros((64, 64), np.int32)
    rr, cc = disk((30, 30), 10)
    labels[rr, cc] = 1
    rr, cc = disk((30, 52), 6)
    labels[rr, cc] = 2
    target = labels == 1
    for _ in range(20):
        clicks = sample_points(target, labels, rng)
        y, x, pos = clicks[0]
        assert pos and target[y, x]
        assert (y - 30) ** 2 + (x - 30) ** 2 <= 7**2  # interior: at least 40 % of max depth
        for y, x, pos in clicks[1:]:
            assert target[y, x] == pos
    # robot: an empty prediction -> a positive click at the centre; exact -> None
    assert robot_click(target, np.zeros_like(target)) == (30, 30, True)
    assert robot_click(target, target.copy()) is None
    fp = target | (labels == 2)
    y, x, pos = robot_click(target, fp)
    assert not pos and labels[y, x] == 2


def test_normalized_focal_loss():
    t = torch.zeros(2, 1, 8, 8)
    t[:, :, 2:6, 2:6] = 1
    good = normalized_focal_loss((t * 2 - 1) * 10, t)
    bad = normalized_focal_loss(-(t * 2 - 1) * 10, t)
    assert good < 1e-3 < bad and torch.isfinite(bad)
    # probabilities, and a weight that excludes the wrong half
    p = t.clone()
    p[..., 4:] = 1 - p[..., 4:]
    w = torch.zeros_like(t)
    w[..., :4] = 1
    assert normalized_focal_loss(p, t, weight=w, from_logits=False) < 1e-3
    assert normalized_focal_loss(p, t, from_logits=False) > 0.1
    fw = soft_focus_weight(torch.tensor([[[20.0, 30.0, 1.0]]]), 64, 96, 0.3)
    assert fw.shape == (1, 1, 64, 96)
    assert fw[0, 0, 20, 30] > 0.85 and fw[0, 0, 0, 0] < 0.01 and fw[0, 0, 20, 80] < 0.01


def test_soft_iou_loss_follows_the_mask_iou():
    t = torch.zeros(2, 1, 32, 32)
    t[0, :, 4:12, 4:12] = 1  # a small object (64 px)
    t[1, :, 2:30, 2:30] = 1  # a large one (784 px)
    exact = soft_iou_loss((t * 2 - 1) * 20, t)
    assert exact < 0.02
    # one pixel too tight all round: the small object loses far more IoU than the large
    tight = torch.zeros_like(t)
    tight[0, :, 5:11, 5:11] = 1
    tight[1, :, 3:29, 3:29] = 1
    per_object = [
        float(soft_iou_loss((tight[i : i + 1] * 2 - 1) * 20, t[i : i + 1])) for i in (0, 1)
    ]
    assert per_object[0] == pytest.approx(1 - (36 + 1) / (64 + 1), abs=1e-3)
    assert per_object[1] == pytest.approx(1 - (676 + 1) / (784 + 1), abs=1e-3)
    assert per_object[0] > 3 * per_object[1]
    # the normalised focal loss weighs the two alike (it averages over the wrong pixels)
    nfl = [
        float(normalized_focal_loss((tight[i : i + 1] * 2 - 1) * 20, t[i : i + 1])) for i in (0, 1)
    ]
    assert nfl[0] == pytest.approx(nfl[1], rel=0.05)


def test_compute_losses_adds_the_soft_iou_term_only_when_asked():
    t = torch.zeros(1, 1, 32, 32)
    t[..., 8:24, 8:24] = 1
    logits = (t * 2 - 1) * 3
    logits[..., 8, 8:24] = -3  # the object's top row missed
    out = {"instances": logits, "feedback_ffcm": t, "feedback_cffm": t}
    new = torch.tensor([[[16.0, 16.0, 1.0]]])
    base, terms = compute_losses(out, t, new, 0.3)
    assert "iou" not in terms
    with_iou, terms = compute_losses(out, t, new, 0.3, iou_weight=2.0)
    assert terms["iou"] > 0.05
    assert float(with_iou) == pytest.approx(float(base) + 2.0 * terms["iou"], rel=1e-5)


def _cfg(images, labels, out, init, **kw):
    base = dict(
        images=str(images),
        labels=str(labels),
        out=str(out),
        init=str(init),
        steps=3,
        crop=64,
        batch=2,
        val_fraction=0.0,
        warmup=2,
        ckpt_every=1,
        seed=3,
        max_robot_clicks=1,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_training_run_and_resume(tmp_path, dataset, init_weights):
    images, labels = dataset
    # uninterrupted: 3 steps
    full = _cfg(images, labels, tmp_path / "full.safetensors", init_weights, iou_weight=0.5)
    summary = train(full, progress=False)
    assert summary["steps"] == 3
    log = [json.loads(line) for line in (tmp_path / "full.run" / "log.jsonl").open()]
    assert len(log) == 3 and all(np.isfinite(r["loss"]) for r in log)
    assert {"instances", "instances_aux", "ffcm", "cffm", "iou"} <= set(log[0])
    # interrupted after 2 steps, then resumed to 3
    part = _cfg(
        images, labels, tmp_path / "part.safetensors", init_weights, steps=2, iou_weight=0.5
    )
    train(part, progress=False)
    ck = torch.load(tmp_path / "part.run" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 2
    resumed = _cfg(images, labels, tmp_path / "part.safetensors", init_weights, iou_weight=0.5)
    assert train(resumed, progress=False, resume=True)["steps"] == 3
    a = load_lite(tmp_path / "full.safetensors").state_dict()
    b = load_lite(tmp_path / "part.safetensors").state_dict()
    init = load_lite(init_weights).state_dict()
    assert not torch.equal(a["head.1.weight"], init["head.1.weight"])  # it trained
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    cfg = json.loads((tmp_path / "part.json").read_text())
    assert cfg["training"]["steps"] == 3 and cfg["arch"] == "fcfi-lite"
    recipe = {
        k: cfg["training"][k] for k in ("lr", "max_robot_clicks", "freeze_blocks", "iou_weight")
    }
    assert recipe == {
        "iou_weight": 0.5,
        "lr": resumed.lr,
        "max_robot_clicks": resumed.max_robot_clicks,
        "freeze_blocks": resumed.freeze_blocks,
    }


def test_batches_from_worker_processes(tmp_path, dataset, init_weights):
    """--workers: the batches come from worker processes; the same options and seed give
    the same weights, another seed other weights, and a stopped run resumes."""
    images, labels = dataset
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cfg = _cfg(images, labels, tmp_path / f"{name}.safetensors", init_weights, seed=seed)
        cfg.workers = 2
        assert train(cfg, progress=False)["steps"] == 3
        runs[name] = load_lite(tmp_path / f"{name}.safetensors").state_dict()
    init = load_lite(init_weights).state_dict()
    assert not torch.equal(runs["a"]["head.1.weight"], init["head.1.weight"])  # it trained
    for k in runs["a"]:
        assert torch.equal(runs["a"][k], runs["b"][k]), k
    assert not torch.equal(runs["a"]["head.1.weight"], runs["c"]["head.1.weight"])
    info = json.loads((tmp_path / "a.json").read_text())["training"]
    assert info["device"] == "cpu"
    # stopped after 2 steps, resumed to 3 from the checkpoint
    part = _cfg(images, labels, tmp_path / "p.safetensors", init_weights, steps=2, workers=2)
    train(part, progress=False)
    resumed = _cfg(images, labels, tmp_path / "p.safetensors", init_weights, workers=2)
    assert train(resumed, progress=False, resume=True)["steps"] == 3
    log = [json.loads(line) for line in (tmp_path / "p.run" / "log.jsonl").open()]
    assert [r["step"] for r in log] == [1, 2, 3]


def test_worker_streams_differ_by_worker_and_start_step():
    from napari_fcfi.training.batches import worker_rng

    draws = {
        k: worker_rng(3, *k).integers(1 << 30, size=4).tolist() for k in [(0, 0), (0, 1), (5, 0)]
    }
    assert len({tuple(v) for v in draws.values()}) == 3
    assert worker_rng(3, 0, 1).integers(1 << 30, size=4).tolist() == draws[(0, 1)]


def test_resume_without_checkpoint_raises(tmp_path, dataset, init_weights):
    cfg = _cfg(*dataset, tmp_path / "x.safetensors", init_weights)
    with pytest.raises(ValueError, match="no checkpoint"):
        train(cfg, progress=False, resume=True)


def test_finetune_builtin_via_cli(tmp_path, dataset):
    from napari_fcfi.cli import main

    images, labels = dataset
    out = tmp_path / "mine.safetensors"
    rc = main(
        [
            "train",
            "--images",
            str(images),
            "--labels",
            str(labels),
            "--init",
            "builtin",
            "--steps",
            "1",
            "--crop",
            "64",
            "--batch",
            "2",
            "--val-fraction",
            "0",
            "--no-progress",
            "--threads",
            "1",
            "--object-span",
            "0.4",
            "0.75",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert json.loads(out.with_suffix(".json").read_text())["training"]["object_span"] == [
        0.4,
        0.75,
    ]
    net = load_lite(out)
    ref = load_lite(BUILTIN_WEIGHTS)
    assert net.inference_defaults == ref.inference_defaults
    assert not torch.equal(net.state_dict()["head.1.weight"], ref.state_dict()["head.1.weight"])


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--crop", "50"], "multiple of 32"),
        (["--steps", "0"], "positive"),
        (["--out", "x.pt"], "safetensors"),
        (["--iou-weight", "-1"], "--iou-weight"),
        (["--iou-weight", "nan"], "--iou-weight"),
        (["--object-span", "0", "0.5"], "--object-span"),
        (["--object-span", "0.7", "0.5"], "--object-span"),
        (["--object-span", "0.5", "1.5"], "--object-span"),
        (["--object-span", "nan", "0.5"], "--object-span"),
        (["--workers", "-1"], "--workers"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, dataset, extra, match, capsys):
    from napari_fcfi.cli import main

    images, labels = dataset
    args = [
        "train",
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--out",
        str(tmp_path / "m.safetensors"),
    ]
    # one line on stderr and exit status 2, nothing written
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert match in err and err.startswith("napari-fcfi train: ") and err.count("\n") == 1
    assert not (tmp_path / "m.run").exists() and not (tmp_path / "m.safetensors").exists()


def test_cli_refuses_a_device_torch_does_not_have(tmp_path, dataset, capsys):
    from napari_fcfi.cli import main

    images, labels = dataset
    device = "mps" if torch.cuda.is_available() else "cuda"
    out = tmp_path / "m.safetensors"
    args = ["train", "--images", str(images), "--labels", str(labels), "--out", str(out)]
    assert main(args + ["--device", device]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-fcfi train: ") and device.upper() in err.upper()
    assert not (tmp_path / "m.run").exists() and not out.exists()
