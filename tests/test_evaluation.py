"""Robot-user loop, metrics, classic baselines and the ``napari-fcfi evaluate`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from skimage import io as skio
from skimage.draw import disk

import napari_fcfi
from napari_fcfi.cli import main
from napari_fcfi.evaluation import evaluate_instance, make_method, summarize
from napari_fcfi.evaluation.robot import iou, noc
from stubnet import StubNet


def _blobs(seed, shape=(72, 88)):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    for i, (cy, cx) in enumerate([(20, 22), (48, 60), (22, 64)], start=1):
        rr, cc = disk((cy + rng.integers(-3, 4), cx + rng.integers(-3, 4)), 9 + i, shape=shape)
        labels[rr, cc] = i
    image = np.where(labels > 0, 180, 30).astype(np.float64) + rng.normal(0, 8, shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    img, lab = _blobs(0)
    tifffile.imwrite(tmp_path / "images" / "a.tif", img)
    tifffile.imwrite(tmp_path / "labels" / "a.tif", lab)
    img, lab = _blobs(1)
    skio.imsave(
        tmp_path / "images" / "b.png", np.stack([img, img // 2, img], -1), check_contrast=False
    )
    skio.imsave(tmp_path / "labels" / "b.png", lab.astype(np.uint8), check_contrast=False)
    (tmp_path / "images" / "unlabelled.tif").write_bytes(b"")  # no label: ignored
    return tmp_path


def test_metrics():
    assert noc(np.array([0.5, 0.86, 0.95]), 0.85, 3) == 2
    assert noc(np.array([0.5, 0.6, 0.7]), 0.85, 3) == 3
    res = summarize([[0.5, 0.86, 0.95], [0.2, 0.3, 0.9]], [0.1] * 6, 3, "m", "x")
    assert list(res) == [
        "instances", "max_clicks", "NoC@80", "NoC@85", "NoC@90", "NoC@90>=max",
        "mIoU", "sec_per_click", "method", "model",
    ]  # fmt: skip
    assert res["NoC@85"] == 2.5 and res["NoC@90"] == 3.0 and res["NoC@90>=max"] == 2
    np.testing.assert_allclose(res["mIoU"], [0.35, 0.58, 0.925])
    gt = np.zeros((4, 4), np.int8)
    gt[:2] = 1
    gt[3] = -1
    pred = np.zeros((4, 4), bool)
    pred[1:] = True
    assert iou(gt, pred) == pytest.approx(4 / 12)


@pytest.mark.parametrize("name", ["random-walker", "watershed"])
def test_classic_methods_segment_a_blob(name):
    img, lab = _blobs(2)
    method = make_method(name)
    method.start(img)
    ious, secs = evaluate_instance(method, lab == 2, max_clicks=5)
    assert ious.shape == (5,) and secs.shape == (5,)
    assert ious.max() > 0.8


def test_fcfi_with_stubnet_feedback_matters():
    img, lab = _blobs(3)
    pred = napari_fcfi.Predictor(StubNet(), device="cpu")
    final = {}
    for name in ("fcfi", "fcfi-nofeedback"):
        method = make_method(name, pred)
        method.start(img)
        ious, _ = evaluate_instance(method, lab == 1, max_clicks=4)
        final[name] = ious
    # the stub keeps what is fed back and adds a disk per click: the IoU grows with feedback
    assert np.all(np.diff(final["fcfi"]) > 0)
    # without feedback only the (zoomed, hence small) click disks remain
    assert final["fcfi-nofeedback"][-1] < final["fcfi"][-1]


@pytest.mark.parametrize("method", ["fcfi", "fcfi-nofeedback", "random-walker", "watershed"])
def test_cli_all_methods(folder, method, monkeypatch, capsys):
    monkeypatch.setattr(napari_fcfi, "load_model", lambda source=None, device=None: StubNet())
    out = folder / f"{method}.json"
    rc = main(
        ["evaluate", "--images", str(folder / "images"), "--labels", str(folder / "labels"),
         "--method", method, "--max-clicks", "3", "--max-instances", "4", "--seed", "1",
         "--json", str(out)]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["instances"] == 4 and res["max_clicks"] == 3 and len(res["mIoU"]) == 3
    assert res["method"] == method
    assert (res["model"] is None) == (not method.startswith("fcfi"))
    assert 1 <= res["NoC@85"] <= 3 and res["sec_per_click"] > 0
    assert all(0 <= v <= 1 for v in res["mIoU"])
    assert "NoC@85" in capsys.readouterr().out


def test_cli_bad_folders(tmp_path, capsys):
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    rc = main(["evaluate", "--images", str(tmp_path / "i"), "--labels", str(tmp_path / "l"),
               "--method", "watershed"])  # fmt: skip
    assert rc == 2
    assert "no image" in capsys.readouterr().err


def test_cli_split_and_sampling_are_deterministic(folder):
    from napari_fcfi.evaluation.cli import list_instances, list_pairs

    pairs = list_pairs(folder / "images", folder / "labels")
    assert [p[0].name for p in pairs] == ["a.tif", "b.png"]
    assert len(list_instances(pairs)) == 6
    assert list_instances(pairs, 3, seed=5) == list_instances(pairs, 3, seed=5)


def test_dsb_val_split_runs(dsb_dir, tmp_path):
    out = tmp_path / "ws.json"
    rc = main(
        ["evaluate", "--images", str(dsb_dir / "train" / "images"), "--labels",
         str(dsb_dir / "train" / "labels"), "--split", "val", "--max-instances", "3",
         "--max-clicks", "2", "--method", "watershed", "--json", str(out)]
    )  # fmt: skip
    assert rc == 0 and json.loads(out.read_text())["instances"] == 3
