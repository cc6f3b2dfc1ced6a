"""scripts/validate_weights.sh: the model card's protocol for one weights file."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_fcfi.model.lite import BUILTIN_WEIGHTS
from napari_fcfi.splits import is_validation, modulus_for

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "validate_weights.sh"


def _env():
    env = dict(os.environ)  # this interpreter's napari-fcfi and python come first
    bindir = pathlib.Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _tiny_set(root: pathlib.Path, rel: str, rng) -> None:
    """Two validation images with two bright disks each, named so that the set's fixed
    split puts them in validation."""
    images, labels = root / rel / "images", root / rel / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    mod = modulus_for(images)
    names = [n for n in (f"img{i}.tif" for i in range(500)) if is_validation(n, mod)][:2]
    yy, xx = np.mgrid[:64, :64]
    for name in names:
        img = rng.normal(0.1, 0.02, (64, 64)).astype(np.float32)
        lab = np.zeros((64, 64), np.uint16)
        for k, (cy, cx) in enumerate(((20, 20), (44, 40)), start=1):
            disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 64
            img[disk] += 0.8
            lab[disk] = k
        tifffile.imwrite(images / name, img)
        tifffile.imwrite(labels / name, lab)


def test_protocol_runs_on_both_sets_and_writes_json(tmp_path):
    rng = np.random.default_rng(0)
    shared = tmp_path / "shared"
    _tiny_set(shared, "data/dsb2018/train", rng)
    _tiny_set(shared, "data/usiigaci", rng)
    out = tmp_path / "out"
    env = _env()
    env["SHARED"] = str(shared)
    res = subprocess.run(
        ["bash", str(SCRIPT), str(BUILTIN_WEIGHTS), str(out), "--instances", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("dsb-fcfi", "usi-fcfi"):
        record = json.loads((out / f"{name}.json").read_text())
        assert record["instances"] == 3
        assert record["max_clicks"] == 20
        assert record["method"] == "fcfi"
        assert f"{name}.json: n=3 NoC@80/85/90" in res.stdout
        assert record["mIoU"][-1] > 0.5  # bright disks on a dark background
    # the built-in weights carry a nuclei preset: the nuclei are also run with it
    record = json.loads((out / "dsb-nuclei.json").read_text())
    assert record["settings"]["preset"] == "nuclei" and record["instances"] == 3
    assert record["settings"]["correction_threshold"] < record["settings"]["threshold"]
    assert "dsb-nuclei.json: n=3 NoC@80/85/90" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["nothing.safetensors", "OUT"], "missing weights file nothing.safetensors"),
        ([str(BUILTIN_WEIGHTS), "OUT", "--fast"], "unknown option --fast"),
    ],
)
def test_bad_input_is_refused_with_a_message(tmp_path, args, message):
    shared = tmp_path / "shared"
    _tiny_set(shared, "data/dsb2018/train", np.random.default_rng(0))
    _tiny_set(shared, "data/usiigaci", np.random.default_rng(1))
    env = _env()
    env["SHARED"] = str(shared)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    res = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True)
    assert res.returncode != 0
    assert message in res.stderr
    assert not (tmp_path / "out").exists()


def test_missing_data_names_the_folder(tmp_path):
    env = _env()
    env["SHARED"] = str(tmp_path / "nowhere")
    res = subprocess.run(
        ["bash", str(SCRIPT), str(BUILTIN_WEIGHTS), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "missing data folder" in res.stderr and "nowhere" in res.stderr


def test_a_failed_evaluation_fails_the_script_and_shows_why(tmp_path):
    shared = tmp_path / "shared"
    _tiny_set(shared, "data/dsb2018/train", np.random.default_rng(0))
    _tiny_set(shared, "data/usiigaci", np.random.default_rng(1))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    env = _env()
    env["SHARED"] = str(shared)
    res = subprocess.run(
        ["bash", str(SCRIPT), str(broken), str(tmp_path / "out"), "--instances", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode != 0
    assert "napari-fcfi evaluate:" in res.stderr  # the failed run's own message
    assert "NoC@80/85/90" not in res.stdout
