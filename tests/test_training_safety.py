"""Training: untrusted checkpoints, every label id/file/slice kept, CLI errors and outputs."""

from __future__ import annotations

import json
import pathlib
import pickle

import numpy as np
import pytest
import tifffile
import torch
from skimage.draw import disk

from napari_fcfi.cli import main
from napari_fcfi.model.lite import FCFILite, save_lite
from napari_fcfi.training.checkpoint import load_checkpoint
from napari_fcfi.training.items import find_files, load_items
from napari_fcfi.training.trainer import TrainConfig, load_datasets


def _disks(size=64, ids=(1, 2, 3), shift=0, dtype=np.uint16):
    """Labels with one disk per id, and a matching uint8 image."""
    lab = np.zeros((size, size), dtype)
    for k, (cy, cx, r) in zip(ids, [(18, 18, 7), (44, 24, 8), (28, 46, 6)]):
        rr, cc = disk((cy + shift, cx), r, shape=lab.shape)
        lab[rr, cc] = k
    img = np.where(lab > 0, 180, 30).astype(np.uint8)
    return img, lab


def _folders(root):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    return root / "images", root / "labels"


@pytest.fixture
def data(tmp_path):
    images, labels = _folders(tmp_path / "data")
    for i in range(2):
        img, lab = _disks(96, shift=3 * i)
        tifffile.imwrite(images / f"img{i}.tif", img)
        tifffile.imwrite(labels / f"img{i}.tif", lab)
    return images, labels


@pytest.fixture
def init(tmp_path):
    torch.manual_seed(0)
    return save_lite(FCFILite(), tmp_path / "init.safetensors")


def _train_args(images, labels, out, init, *extra):
    return [
        "train",
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--init",
        str(init),
        "--crop",
        "64",
        "--batch",
        "2",
        "--val-fraction",
        "0",
        "--max-robot-clicks",
        "1",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


# ---------------------------------------------------------------- checkpoints are never run
class _Evil:
    """Unpickling this creates a file: the payload of a code-carrying pickle."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_resume_refuses_a_code_carrying_checkpoint(tmp_path, data, init, capsys, writer):
    target = tmp_path / "pwned"
    work = tmp_path / "work"
    work.mkdir()
    evil = {"model": _Evil(target), "step": 1}
    if writer == "torch":
        torch.save(evil, work / "checkpoint.pt")
    else:
        with open(work / "checkpoint.pt", "wb") as fh:
            pickle.dump(evil, fh)
    out = tmp_path / "m.safetensors"
    args = _train_args(*data, out, init, "--steps", "2", "--resume", "--workdir", str(work))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "checkpoint.pt" in err and err.count("\n") == 1
    assert not target.exists(), "the checkpoint's code was executed"
    assert not out.exists() and not (work / "log.jsonl").exists()
    with pytest.raises(ValueError, match="never loaded"):
        load_checkpoint(work / "checkpoint.pt")
    assert not target.exists()


def test_resume_refuses_a_foreign_or_corrupt_checkpoint(tmp_path, data, init, capsys):
    work = tmp_path / "work"
    work.mkdir()
    torch.save({"weights": torch.zeros(2)}, work / "checkpoint.pt")
    args = _train_args(
        *data, tmp_path / "m.safetensors", init, "--steps", "2", "--resume", "--workdir", str(work)
    )
    assert main(args) == 2
    assert "not a training checkpoint" in capsys.readouterr().err
    (work / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    assert main(args) == 2
    assert "cannot read the training checkpoint" in capsys.readouterr().err


def test_cli_run_resume_and_overwrite(tmp_path, data, init, capsys):
    out = tmp_path / "m.safetensors"
    work = tmp_path / "work"
    common = ("--workdir", str(work), "--ckpt-every", "1")
    assert main(_train_args(*data, out, init, "--steps", "2", *common)) == 0
    # the checkpoint holds tensors and plain containers only
    ck = load_checkpoint(work / "checkpoint.pt")
    assert ck["step"] == 2 and isinstance(ck["rng"]["state"]["state"], str)
    # resuming continues the run and replaces its own output
    assert main(_train_args(*data, out, init, "--steps", "3", "--resume", *common)) == 0
    assert json.loads(out.with_suffix(".json").read_text())["training"]["steps"] == 3
    assert len((work / "log.jsonl").read_text().splitlines()) == 3
    capsys.readouterr()
    # a new run does not overwrite existing weights, or their JSON alone, without --overwrite
    before = out.read_bytes()
    other = tmp_path / "w2"
    assert main(_train_args(*data, out, init, "--steps", "1", "--workdir", str(other))) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert not other.exists()
    lone = tmp_path / "lone.safetensors"
    lone.with_suffix(".json").write_text("{}")
    assert main(_train_args(*data, lone, init, "--steps", "1")) == 2
    assert "lone.json already exists" in capsys.readouterr().err
    args = _train_args(*data, out, init, "--steps", "1", "--workdir", str(other), "--overwrite")
    assert main(args) == 0
    assert json.loads(out.with_suffix(".json").read_text())["training"]["steps"] == 1


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--lr", "nan"], "--lr"),
        (["--threads", "0"], "--threads"),
        (["--time-limit", "-1"], "--time-limit"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--freeze-blocks", "-2"], "--freeze-blocks"),
    ],
)
def test_cli_bad_options_are_one_line(tmp_path, data, init, capsys, extra, match):
    out = tmp_path / "m.safetensors"
    assert main(_train_args(*data, out, init, "--steps", "1", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-fcfi train: ") and match in err and err.count("\n") == 1
    assert not (tmp_path / "m.run").exists()


def test_cli_data_errors_leave_no_run_dir(tmp_path, init, capsys):
    images, labels = _folders(tmp_path / "d")
    img, lab = _disks()
    tifffile.imwrite(images / "a.tif", img)
    tifffile.imwrite(labels / "b.tif", lab)  # no label of the same name
    out = tmp_path / "m.safetensors"
    assert main(_train_args(images, labels, out, init, "--steps", "1")) == 2
    err = capsys.readouterr().err
    assert "no image" in err and err.count("\n") == 1
    assert not (tmp_path / "m.run").exists() and not out.exists()
    # a config that cannot be a model: one line too
    bad = tmp_path / "bad.safetensors"
    save_lite(FCFILite(), bad)
    cfg = json.loads(bad.with_suffix(".json").read_text())
    cfg["params"]["fpn_channels"] = -3
    bad.with_suffix(".json").write_text(json.dumps(cfg))
    tifffile.imwrite(labels / "a.tif", lab)
    assert main(_train_args(images, labels, out, bad, "--steps", "1")) == 2
    assert "fpn_channels" in capsys.readouterr().err
    assert not (tmp_path / "m.run").exists()


# ---------------------------------------------------------------- every id, file and slice
def test_large_label_ids_are_kept(tmp_path):
    images, labels = _folders(tmp_path)
    ids = (7, 2**31 + 5, 2**32 - 1)
    img, lab = _disks(ids=ids, dtype=np.uint32)
    tifffile.imwrite(images / "a.tif", img)
    tifffile.imwrite(labels / "a.tif", lab)
    (item,) = load_items(images, labels)
    assert len(item.objects) == 3 and len(item.extents) == 3
    # each object keeps its own pixels, none merged with another or with the background
    for orig in ids:
        new = np.unique(item.labels[lab == orig])
        assert new.size == 1 and new[0] > 0
    assert np.array_equal(item.labels > 0, lab > 0)


def test_negative_or_fractional_labels_are_refused(tmp_path):
    images, labels = _folders(tmp_path)
    img, lab = _disks(dtype=np.int16)
    lab[lab == 2] = -4
    tifffile.imwrite(images / "a.tif", img)
    tifffile.imwrite(labels / "a.tif", lab)
    with pytest.raises(ValueError, match="negative"):
        load_items(images, labels)
    tifffile.imwrite(labels / "a.tif", lab.astype(np.float32) + 0.5)
    with pytest.raises(ValueError, match="non-integer"):
        load_items(images, labels)


def test_dotted_names_are_distinct_files(tmp_path):
    images, labels = _folders(tmp_path)
    for i, name in enumerate(["cell.a.tif", "cell.b.tif", "plain.tif"]):
        img, lab = _disks(shift=4 * i)
        tifffile.imwrite(images / name, img)
        tifffile.imwrite(labels / name, lab)
    assert sorted(find_files(images)) == ["cell.a", "cell.b", "plain"]
    items = load_items(images, labels)
    assert sorted(it.name for it in items) == ["cell.a", "cell.b", "plain"]
    cfg = TrainConfig(images=str(images), labels=str(labels), out="x.safetensors", val_fraction=0)
    ((_, train_items, val_items),) = load_datasets(cfg)
    assert len(train_items) == 3 and val_items == []


def test_names_differing_only_in_extension_are_refused(tmp_path):
    images, labels = _folders(tmp_path)
    img, lab = _disks()
    tifffile.imwrite(images / "x.tif", img)
    from skimage import io as skio

    skio.imsave(images / "x.png", img, check_contrast=False)
    tifffile.imwrite(labels / "x.tif", lab)
    with pytest.raises(ValueError, match="x.png.*same name|same name"):
        load_items(images, labels)


def test_label_stack_gives_one_item_per_slice(tmp_path):
    images, labels = _folders(tmp_path)
    planes = [_disks(shift=3 * z) for z in range(3)]
    img = np.stack([p[0] for p in planes])
    lab = np.stack([p[1] for p in planes])
    lab[1][lab[1] == 3] = 0  # slice 1 has two objects only
    tifffile.imwrite(images / "s.tif", img)
    tifffile.imwrite(labels / "s.tif", lab)
    items = load_items(images, labels)
    assert [it.name for it in items] == ["s[z=0]", "s[z=1]", "s[z=2]"]
    assert [len(it.objects) for it in items] == [3, 2, 3]
    for z, it in enumerate(items):
        assert np.array_equal(it.image, img[z]) and np.array_equal(it.labels > 0, lab[z] > 0)
    # a stack of labels for a 2-D image is refused, not cut to its first slice
    tifffile.imwrite(images / "s.tif", img[0])
    with pytest.raises(ValueError, match="stack"):
        load_items(images, labels)


def test_colour_coded_labels_keep_every_colour(tmp_path):
    images, labels = _folders(tmp_path)
    img, lab = _disks()
    rgb = np.zeros(lab.shape + (3,), np.uint8)
    rgb[lab == 1] = (255, 0, 0)
    rgb[lab == 2] = (255, 0, 9)  # same red channel as object 1
    rgb[lab == 3] = (0, 40, 0)
    tifffile.imwrite(images / "c.tif", img)
    tifffile.imwrite(labels / "c.tif", rgb)
    (item,) = load_items(images, labels)
    assert len(item.objects) == 3
