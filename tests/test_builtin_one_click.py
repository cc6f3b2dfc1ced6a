"""The shipped model, offline: one click gives the whole object.

Three objects the built-in model never saw in training (fixtures in ``tests/data``): a
large nucleus of the ``nuclei2d`` sample, a small nucleus of a DSB2018 validation image and
a whole phase-contrast cell of a Usiigaci validation image. Each gets one positive click at
its centre (the pixel deepest inside it) with the shipped inference defaults. The built-in
model of cells (``fcfi-lite-cells``) gets the same click on the same cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_fcfi._sample_data import load_sample
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.model.io import load_model
from napari_fcfi.stack.propagate import interior_point

FIXTURES = np.load(Path(__file__).parent / "data" / "one_click.npz")
#: minimum IoU of each one-click mask with its ground truth
MIN_IOU = {"large": 0.85, "small": 0.75, "cell": 0.80}


@pytest.fixture(scope="module")
def predictor():
    return Predictor(load_model(), device="cpu")


def pick(labels, rank):
    """The object of the given area rank (0 = largest) among those clear of the border."""
    border = set(np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    ids, counts = np.unique(labels, return_counts=True)
    keep = [(c, i) for i, c in zip(ids, counts) if i and i not in border]
    keep.sort(reverse=True)
    return labels == keep[min(rank, len(keep) - 1)][1]


def one_click_iou(predictor, image, gt):
    y, x = interior_point(gt)
    predictor.reset_state()
    mask = predictor.predict(image, [(int(y), int(x), True)]) > predictor.threshold
    return np.count_nonzero(mask & gt) / np.count_nonzero(mask | gt)


@pytest.mark.parametrize("kind", ["large", "small", "cell"])
def test_one_click_whole_object(predictor, kind):
    if kind == "large":
        image = np.asarray(load_sample("nuclei2d")[0][0])
        gt = pick(FIXTURES["large_labels"], 0)
    else:
        image = FIXTURES[f"{kind}_image"]
        labels = FIXTURES[f"{kind}_labels"]
        gt = pick(labels, len(np.unique(labels)) // 2 if kind == "small" else 0)
    assert one_click_iou(predictor, image, gt) >= MIN_IOU[kind]


def test_the_cells_model_segments_a_whole_cell_from_one_click():
    predictor = Predictor(load_model("fcfi-lite-cells"), device="cpu")
    gt = pick(FIXTURES["cell_labels"], 0)
    assert one_click_iou(predictor, FIXTURES["cell_image"], gt) >= MIN_IOU["cell"]
