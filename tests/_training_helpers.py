"""Helpers for the training tests: a tiny synthetic data set and the project's scripts."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import tifffile
from skimage.draw import disk

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"
BENCHMARKS = SCRIPTS.parent / "benchmarks"


def load_script(name: str, folder: pathlib.Path = SCRIPTS):
    """``<folder>/<name>.py`` (default: ``scripts/``) as a module (its ``main(argv)`` is what
    the command runs)."""
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_dataset(root, n=2, size=96, rgb=False, dtype=np.uint8):
    """``n`` synthetic images of bright disks (nuclei) with instance labels."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        lab = np.zeros((size, size), np.uint16)
        for k, (cy, cx, r) in enumerate([(25, 25, 9), (60, 35, 11), (40, 70, 8)], start=1):
            rr, cc = disk((cy + 3 * i, cx), r, shape=lab.shape)
            lab[rr, cc] = k
        img = (lab > 0) * 150.0 + 30 + rng.normal(0, 8, lab.shape)
        if dtype == np.uint16:
            img = img * 40
        img = np.clip(img, 0, np.iinfo(dtype).max).astype(dtype)
        if rgb:
            img = np.stack([img, img // 2, img], axis=-1)
        tifffile.imwrite(root / "images" / f"img{i}.tif", img)
        tifffile.imwrite(root / "labels" / f"img{i}.tif", lab)
    return root / "images", root / "labels"
