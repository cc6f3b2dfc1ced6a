"""The click-agreement benchmark's rows and summary (fake methods, no network)."""

import numpy as np
import pytest

from _training_helpers import BENCHMARKS, load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_click_agreement", BENCHMARKS)


def _disk(r, shape=(64, 64), c=(32, 32)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r


class FixedMethod:
    """Answers the same disk whatever the clicks (it ignores them)."""

    def __init__(self, r):
        self.prob = _disk(r).astype(np.float32)

    def start_object(self):
        pass

    def predict(self, clicks, prev_prob=None):
        return self.prob

    def threshold_for(self, first):
        return 0.5


class ObedientMethod(FixedMethod):
    """Answers the true object plus every positive click, minus every negative one."""

    def __init__(self, gt):
        self.gt = gt

    def predict(self, clicks, prev_prob=None):
        prob = self.gt.astype(np.float32) * 0.9
        for y, x, positive in clicks:
            prob[y, x] = 1.0 if positive else 0.0
        return prob


def test_an_answer_that_ignores_its_clicks_contradicts_them(bench):
    gt = _disk(12)
    rows = bench.object_rows(FixedMethod(6), gt, 4)
    assert [r["click"] for r in rows] == [1, 2, 3, 4]
    # the first click lands in the disk's centre: obeyed; the robot's next positive clicks
    # fall on the missed ring, which the fixed answer never covers
    assert rows[0]["newest_wrong"] is False
    assert all(r["newest_wrong"] for r in rows[1:])
    assert [r["earlier"] for r in rows] == [0, 1, 2, 3]
    assert [r["earlier_wrong"] for r in rows] == [0, 0, 1, 2]
    assert all(r["phase"] == "before 90 %" for r in rows)
    assert all(r["area"] == int(gt.sum()) for r in rows)


def test_an_obedient_answer_and_the_phases(bench):
    gt = _disk(10)
    rows = bench.object_rows(ObedientMethod(gt), gt, 3)
    assert not any(r["newest_wrong"] or r["earlier_wrong"] for r in rows)
    # the first answer is already perfect: the later answers come after 90 %
    assert [r["phase"] for r in rows] == ["before 90 %", "after 90 %", "after 90 %"]


def test_summary_shares_by_size_and_phase(bench):
    rows = [
        {
            "area": 50,
            "click": 1,
            "phase": "before 90 %",
            "newest_wrong": False,
            "earlier": 0,
            "earlier_wrong": 0,
        },
        {
            "area": 50,
            "click": 2,
            "phase": "before 90 %",
            "newest_wrong": True,
            "earlier": 1,
            "earlier_wrong": 1,
        },
        {
            "area": 700,
            "click": 1,
            "phase": "after 90 %",
            "newest_wrong": False,
            "earlier": 3,
            "earlier_wrong": 0,
        },
    ]
    table = {(e["area"], e["phase"]): e for e in bench.summarize(rows)}
    small = table[("0-100", "before 90 %")]
    assert small["answers"] == 2
    assert small["newest_wrong"] == 0.5
    assert small["any_earlier_wrong"] == 0.5
    assert small["earlier_wrong"] == 1.0
    assert table[("all", "before 90 %")]["answers"] == 2
    assert table[("600-2000", "after 90 %")]["earlier_wrong"] == 0.0
    assert ("600-2000", "before 90 %") not in table
