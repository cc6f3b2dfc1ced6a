"""The user guide's stated figures are reproducible with the shipped defaults.

``docs/images/screenshots.json`` records, for the 2-D screenshots, the robot-user clicks of
every nucleus and the IoU the widget reached. Replaying those clicks through the Qt-free
engine (what the widget runs: built-in model, default settings, earlier objects protected)
must give the same IoUs within 0.02.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_fcfi._sample_data import load_sample
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.inference.session import InteractiveSession
from napari_fcfi.model.io import load_model

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads((ROOT / "docs" / "images" / "screenshots.json").read_text())
GT = np.load(Path(__file__).parent / "data" / "one_click.npz")["large_labels"]


def test_user_guide_ious_are_reproduced():
    image = np.asarray(load_sample("nuclei2d")[0][0])
    predictor = Predictor(load_model(), device="cpu")
    taken = np.zeros(image.shape, bool)
    stated, replayed = [], []
    for obj in RECORD["clicks_2d"]:
        clicks = [tuple(c) for c in obj["clicks"]]
        target = GT == GT[clicks[0][0], clicks[0][1]]
        session = InteractiveSession(predictor, image)
        for y, x, positive in clicks:
            session.add_click(y, x, bool(positive))
        # each answer at its own threshold (first click, corrections), as the widget reads it
        mask = session.mask & ~taken
        taken |= mask
        replayed.append(np.count_nonzero(mask & target) / np.count_nonzero(mask | target))
        stated.append(obj["iou"])
    assert len(stated) >= 5
    np.testing.assert_allclose(replayed, stated, atol=0.02)
