"""Network-level conformance of the HRNet-W18 (h18s) FCFI model with the official vectors.

Tolerances are those recommended in ``shared/conformance/README.md``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers_w1 import load_case, official_keys, run_case, w1_model
from napari_fcfi.model.clicks import disk_maps
from w1 import w1_state_dict

CASES = ["first_click", "later_click"]


@pytest.fixture(scope="module")
def h18s(conformance_dir):
    return w1_model(conformance_dir, "h18s")


@pytest.fixture(scope="module")
def outputs(h18s, conformance_dir):
    """Each case run once (with the low-resolution debug maps)."""
    res = {}
    for case in CASES:
        d = load_case(conformance_dir, "h18s", case)
        res[case] = (d, run_case(h18s, d, return_lowres=True), list(
            h18s.feature_extractor.correction_module.last_boxes[0]
        ))  # fmt: skip
    return res


@pytest.mark.parametrize("name", ["h18s", "r101"])
def test_w1_matches_fingerprint(conformance_dir, name):
    fp = json.loads((conformance_dir / name / "w1_fingerprint.json").read_text())
    sd = w1_state_dict(official_keys(conformance_dir, name))
    assert len(fp) == len(sd)
    for e in fp:
        t = sd[e["name"]].double()
        assert t.sum().item() == pytest.approx(e["sum"], rel=1e-6, abs=1e-6), e["name"]
        assert t.abs().sum().item() == pytest.approx(e["abs_sum"], rel=1e-6, abs=1e-6), e["name"]
        assert t.flatten()[: len(e["first"])].tolist() == pytest.approx(e["first"], abs=0)


def test_state_dict_equals_keys_json(h18s, conformance_dir):
    keys = official_keys(conformance_dir, "h18s")
    mine = [
        [k, list(v.shape), str(v.dtype).removeprefix("torch.")]
        for k, v in h18s.state_dict().items()
    ]
    assert mine == keys


def _logits_ok(got, ref):
    scale = np.abs(ref).max()
    diff = np.abs(got - ref)
    assert diff.max() <= 1e-4 * scale, f"max {diff.max()} > {1e-4 * scale}"
    assert diff.mean() <= 1e-5 * scale, f"mean {diff.mean()} > {1e-5 * scale}"


@pytest.mark.parametrize("case", CASES)
def test_logits(outputs, case):
    d, out, _ = outputs[case]
    _logits_ok(out["instances"], d["instances"])
    _logits_ok(out["instances_aux"], d["instances_aux"])
    _logits_ok(out["lowres_instances"], d["lowres_instances"])
    _logits_ok(out["lowres_instances_aux"], d["lowres_instances_aux"])


@pytest.mark.parametrize("case", CASES)
def test_feedback_maps(outputs, case):
    d, out, _ = outputs[case]
    assert np.abs(out["feedback_ffcm"] - d["updated_feedback1"]).max() <= 1e-4
    assert np.abs(out["lowres_feedback1"] - d["lowres_feedback1"]).max() <= 1e-4
    assert np.abs(out["feedback_cffm"] - d["updated_feedback2"]).max() <= 5e-3
    assert np.abs(out["lowres_feedback2"] - d["lowres_feedback2"]).max() <= 5e-3


@pytest.mark.parametrize("case", CASES)
def test_disk_maps_and_focus_box(outputs, case):
    d, _, boxes = outputs[case]
    h, w = d["prev_mask"].shape
    disks = disk_maps(torch.from_numpy(d["points"]), h, w, 5).numpy()[0].astype(np.uint8)
    np.testing.assert_array_equal(disks, d["disk_maps"])
    assert len(boxes) == 1
    box_in, box_feat, _ = boxes[0]
    assert list(box_in) == d["ffcm_box_input"].tolist()
    assert list(box_feat) == d["ffcm_box_feat"].tolist()


def test_batch_matches_single(h18s, outputs):
    """Two different scenes in one batch give the per-scene results (flip batches rely on it)."""
    (d1, o1, _), (d2, o2, _) = outputs["first_click"], outputs["later_click"]
    n = max(d1["points"].shape[1], d2["points"].shape[1])

    def pad(p):
        rows = np.full((1, n, 3), -1, np.float32)
        half = p.shape[1] // 2
        rows[0, :half] = p[0, :half]
        rows[0, n // 2 : n // 2 + half] = p[0, half:]
        return rows

    # the official layout: N positive rows then N negative rows
    pts = np.concatenate([pad(d1["points"]), pad(d2["points"])])
    with torch.inference_mode():
        out = h18s(
            torch.cat([d1["t_image"], d2["t_image"]]),
            torch.cat([d1["t_prev_mask"], d2["t_prev_mask"]]),
            torch.from_numpy(pts),
            torch.cat([d1["t_new_points"], d2["t_new_points"]]),
            torch.tensor([float(d1["gate"]), float(d2["gate"])]),
        )
    for i, o in enumerate((o1, o2)):
        scale = np.abs(o["instances"]).max()
        assert np.abs(out["instances"][i, 0].numpy() - o["instances"]).max() <= 1e-4 * scale
        assert np.abs(out["feedback_ffcm"][i, 0].numpy() - o["feedback_ffcm"]).max() <= 1e-5
