"""Packed training sets for a GPU machine: ``scripts/pack_training_data.py`` keeps the
training split only and unpacks to what the trainer reads; ``scripts/train_gpu.sh`` trains
from the packs (here on the CPU, with a tiny run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import tifffile

from _training_helpers import SCRIPTS, load_script, write_dataset
from napari_fcfi.splits import split_names


def _sets(tmp_path):
    dsb = write_dataset(tmp_path / "src" / "dsb2018", n=12, rgb=True)
    usi = write_dataset(tmp_path / "src" / "usiigaci", n=15, dtype=np.uint16)
    return {"dsb2018": dsb, "usiigaci": usi}


def _pack(tool, images, labels, dest) -> int:
    """``pack_training_data.py pack``; returns its exit status."""
    return tool.main(
        ["pack", "--images", str(images), "--labels", str(labels), "--dest", str(dest)]
    )


def test_pack_keeps_the_training_split_and_unpacks_losslessly(tmp_path):
    tool = load_script("pack_training_data")
    for name, (images, labels) in _sets(tmp_path).items():
        pack = tmp_path / "pack" / name
        assert _pack(tool, images, labels, pack) == 0
        names = sorted(p.stem for p in images.iterdir())
        train, val = split_names(names, 10 if name == "dsb2018" else 8)
        assert val, "the synthetic set should have a validation image"
        assert sorted(json.loads((pack / "pack.json").read_text())["images"]) == train
        out = tmp_path / "data" / name
        assert tool.main(["unpack", str(pack), "--dest", str(out)]) == 0
        assert sorted(p.stem for p in (out / "images").iterdir()) == train
        for n in train:
            src = tifffile.imread(images / f"{n}.tif")
            back = tifffile.imread(out / "images" / f"{n}.tif")
            expected = tool.to_uint8(src)  # 8-bit unchanged, 16-bit over its 0.01-99.99 %
            assert back.dtype == np.uint8 and np.array_equal(back, expected), n
            assert np.array_equal(
                tifffile.imread(out / "labels" / f"{n}.tif"), tifffile.imread(labels / f"{n}.tif")
            )


def test_pack_refuses_an_image_without_labels(tmp_path, capsys):
    tool = load_script("pack_training_data")
    images, labels = write_dataset(tmp_path / "dsb2018", n=3)
    next(labels.iterdir()).unlink()
    assert _pack(tool, images, labels, tmp_path / "p") == 2
    assert "no label image" in capsys.readouterr().err


def test_train_gpu_script_trains_from_the_packs(tmp_path):
    tool = load_script("pack_training_data")
    for name, (images, labels) in _sets(tmp_path).items():
        assert _pack(tool, images, labels, tmp_path / "pack" / name) == 0
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    dest = tmp_path / "out"
    overrides = [
        "--device",
        "cpu",
        "--steps",
        "2",
        "--batch",
        "2",
        "--crop",
        "64",
        "--workers",
        "1",
        "--threads",
        "1",
    ]
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "train_gpu.sh"), str(tmp_path / "pack"), str(dest), "5", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 steps, 4 samples" in proc.stdout
    info = json.loads((dest / "fcfi-lite.json").read_text())["training"]
    assert info["device"] == "cpu" and info["steps"] == 2 and info["init"] == "fcfi-lite"
    # every packed image is a training image (img5, img7 of 12 and img14 of 15 stayed behind)
    assert info["datasets"] == {"dsb2018": [10, 0], "usiigaci": [14, 0]}
    assert len((dest / "log.jsonl").read_text().splitlines()) == 2


def test_training_needs_neither_dask_nor_zarr_nor_gui_packages(tmp_path):
    """A GPU machine with torch and the scientific stack but no dask, zarr, napari or Qt can
    train: the train command imports none of them."""
    from _blocked_imports import BLOCKED

    images, labels = write_dataset(tmp_path / "set", n=2)
    out = tmp_path / "w.safetensors"
    blocked = (*BLOCKED, "dask", "zarr")
    script = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(name + " may not be imported here")
sys.meta_path.insert(0, Blocker())
from napari_fcfi.cli import main
sys.exit(main(["train", "--images", {str(images)!r}, "--labels", {str(labels)!r},
               "--init", "builtin", "--steps", "1", "--crop", "64", "--batch", "2",
               "--val-fraction", "0", "--threads", "1", "--no-progress", "--out", {str(out)!r}]))
"""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file()
