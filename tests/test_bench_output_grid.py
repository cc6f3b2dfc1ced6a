"""The output-grid benchmark: the best answer each output grid allows (no network)."""

import numpy as np
import pytest

from _training_helpers import BENCHMARKS, load_script
from napari_fcfi.inference.views import ViewRules


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_output_grid", BENCHMARKS)


def _ellipse(ry, rx, shape=(400, 400), c=(200, 190)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - c[0]) / ry) ** 2 + ((xx - c[1]) / rx) ** 2 <= 1.0


def test_a_coarser_grid_loses_more_of_a_large_object(bench):
    gt = _ellipse(90, 60)  # 180 px tall: its first-click box (x2.5) is shrunk into 160 px
    box = (0, 399, 0, 399)
    ious = {f: bench.iou(bench.best_answer(gt, box, (160, 160), f), gt) for f in (1, 2, 4)}
    assert ious[1] > ious[2] > ious[4]
    assert ious[4] < 0.97 and ious[1] > 0.97
    # a box at the network's own size loses nothing at the input's grid
    same = bench.best_answer(gt[100:300, 100:300], (0, 199, 0, 199), (200, 200), 1)
    assert bench.iou(same, gt[100:300, 100:300]) == 1.0


def test_rows_and_summary(bench):
    rules = ViewRules(160, 1.5, 70)
    gt = _ellipse(40, 25)
    rows = bench.object_rows(gt, rules, 2.5)
    views = {(r["view"], r["grid"]) for r in rows}
    assert ("first click", "1/2") in views and ("later clicks", "1/4") in views
    assert ("one-pixel reference", "-") in views
    assert all(r["area"] == int(gt.sum()) for r in rows)
    later = {r["grid"]: r["iou"] for r in rows if r["view"] == "later clicks"}
    assert later["1/1"] >= later["1/2"] >= later["1/4"]
    table = bench.summarize(rows + bench.object_rows(_ellipse(5, 6), rules, 2.5))
    overall = [e for e in table if e["area"] == "all" and e["view"] == "later clicks"]
    assert [e["n"] for e in overall] == [2, 2, 2]
    small = [e for e in table if e["area"] == "0-100"]
    assert small and all(e["n"] == 1 for e in small)
    assert all(0.0 <= e["share_90"] <= e["share_85"] <= 1.0 for e in table)
