"""The mask-bias benchmark's per-object rows and summary (a fake method, no network)."""

import numpy as np
import pytest

from _training_helpers import BENCHMARKS, load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_mask_bias", BENCHMARKS)


def _disk(r, shape=(64, 64), c=(32, 32)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r


class ShrinkingMethod:
    """Answers a disk that loses one pixel of radius per click, probabilities 0.4 / 0.6."""

    def __init__(self, r0):
        self.r0 = r0

    def start_object(self):
        self.calls = 0

    def predict(self, clicks, prev_prob=None):
        self.calls += 1
        assert len(clicks) == self.calls
        inner = _disk(self.r0 - self.calls)
        prob = np.where(inner, 0.6, 0.0)
        prob[_disk(self.r0 - self.calls + 2) & ~inner] = 0.4
        return prob


def test_rows_follow_the_clicks(bench):
    gt = _disk(10)
    rows = bench.object_rows(ShrinkingMethod(11), gt, [1, 3])
    assert [r["click"] for r in rows] == [1, 3]
    first, third = rows
    assert first["area_ratio"] == pytest.approx(1.0, abs=0.05)  # radius 10 at 0.49
    assert third["area_ratio"] == pytest.approx(_disk(8).sum() / gt.sum())
    # the shrunk mask is better recovered by the lower threshold and by growing it
    assert third["iou@0.3"] > third["iou@0.49"] > third["iou@0.7"] == 0.0
    assert third["iou_grown"] > third["iou@0.49"] > third["iou_shrunk"]


def test_summary_bins_by_area_and_click(bench):
    rows = [
        {
            "area": 50,
            "click": 1,
            "area_ratio": 1.2,
            "iou@0.3": 0.5,
            "iou@0.49": 0.6,
            "iou@0.7": 0.4,
            "iou_grown": 0.5,
            "iou_shrunk": 0.5,
        },
        {
            "area": 80,
            "click": 1,
            "area_ratio": 0.8,
            "iou@0.3": 0.7,
            "iou@0.49": 0.8,
            "iou@0.7": 0.6,
            "iou_grown": 0.7,
            "iou_shrunk": 0.3,
        },
        {
            "area": 300,
            "click": 1,
            "area_ratio": 1.0,
            "iou@0.3": 0.9,
            "iou@0.49": 0.9,
            "iou@0.7": 0.9,
            "iou_grown": 0.8,
            "iou_shrunk": 0.8,
        },
    ]
    table = bench.summarize(rows)
    assert [(e["area"], e["n"]) for e in table] == [("0-100", 2), ("250-600", 1)]
    assert table[0]["area_ratio_median"] == pytest.approx(1.0)
    assert table[0]["iou@0.49"] == pytest.approx(0.7)
