"""Qt-free tests of the stack propagation engine (napari_fcfi.stack.propagate)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fcfi.masks import interior_point, iou
from napari_fcfi.stack.propagate import iter_propagate, propagate


class OracleSession:
    """A session whose result is a fixed per-slice mask (keyed by the image's value),
    recording the feedback and click it received."""

    log: list = []

    def __init__(self, masks, image, feedback=None):
        self.masks = masks
        self.index = int(np.asarray(image).flat[0])
        self.feedback = feedback
        self.mask = None

    def add_click(self, y, x, positive):
        OracleSession.log.append((self.index, (y, x), positive, self.feedback))
        self.mask = self.masks[self.index]
        return self.mask.astype(np.float32)


def disk(cy, cx, r, shape=(40, 40)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def run(masks, start, **kwargs):
    """Propagate with the oracle; the slices are constant images (their value is the slice
    index), so the image-evidence rule, which would read them as a fading object, is off
    here (tests/test_propagation_stop.py covers it)."""
    kwargs.setdefault("evidence", False)
    OracleSession.log = []
    n = len(masks)
    slices = [np.full((40, 40), i, dtype=np.int32) for i in range(n)]
    steps = list(
        iter_propagate(
            lambda img, fb: OracleSession(masks, img, fb),
            lambda i: slices[i],
            start,
            masks[start],
            n,
            **kwargs,
        )
    )
    return steps


def test_interior_point_and_iou():
    m = np.zeros((20, 30), bool)
    m[5:15, 2:8] = True  # thin bar, then a big block
    m[2:18, 15:29] = True
    y, x = interior_point(m)
    assert m[y, x] and 15 <= x < 29
    # an object touching the border still gets an interior point inside it
    edge = np.zeros((10, 10), bool)
    edge[:, :3] = True
    assert edge[interior_point(edge)]
    assert iou(m, m) == 1.0
    assert iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert iou(edge, ~edge) == 0.0
    with pytest.raises(ValueError):
        interior_point(np.zeros((5, 5), bool))


def test_propagates_both_directions_with_feedback_and_interior_click():
    masks = [disk(20, 20 + i, 8) for i in range(7)]
    steps = run(masks, 3)
    assert [s.index for s in steps] == [4, 5, 6, 2, 1, 0]
    assert all(s.mask is not None and s.stopped is None for s in steps)
    assert steps[-1].done == steps[-1].total == 6
    # slice 4's feedback is slice 3's mask, the click is at its interior point
    index, click, positive, feedback = OracleSession.log[0]
    assert index == 4 and positive
    np.testing.assert_array_equal(feedback > 0.5, masks[3])
    assert click == interior_point(masks[3])
    # slice 5 starts from slice 4's result
    np.testing.assert_array_equal(OracleSession.log[1][3] > 0.5, masks[4])
    out = propagate(
        lambda img, fb: OracleSession(masks, img, fb),
        lambda i: np.full((40, 40), i),
        3,
        masks[3],
        7,
        evidence=False,
    )
    assert sorted(out) == [0, 1, 2, 4, 5, 6]


def test_stops_on_low_iou():
    masks = [disk(20, 20, 8) for _ in range(6)]
    masks[5] = disk(20, 20, 3)  # IoU ~ 0.14 with slice 4
    steps = run(masks, 2, directions=(1,))
    assert [(s.index, s.stopped) for s in steps] == [(3, None), (4, None), (5, "iou")]
    assert steps[-1].mask is None and steps[-1].iou < 0.5
    # a lower threshold accepts it
    steps = run(masks, 2, directions=(1,), iou_threshold=0.1)
    assert steps[-1].stopped is None


def test_stops_when_object_vanishes_and_at_stop_slices():
    masks = [disk(20, 20, 8) for _ in range(8)]
    masks[1] = np.zeros((40, 40), bool)
    steps = run(masks, 4, stop_slices={6})
    got = [(s.index, s.stopped) for s in steps]
    assert got == [(5, None), (6, "stop"), (3, None), (2, None), (1, "vanished")]
    # the stop slice is never segmented
    assert 6 not in [entry[0] for entry in OracleSession.log]


def test_max_slices_and_bad_input():
    masks = [disk(20, 20, 8) for _ in range(9)]
    steps = run(masks, 4, max_slices=2)
    assert [s.index for s in steps] == [5, 6, 3, 2]
    assert steps[0].total == 4
    with pytest.raises(ValueError, match="empty"):
        run([np.zeros((40, 40), bool)] * 3, 1)
    with pytest.raises(ValueError, match="outside"):
        list(iter_propagate(None, None, 5, masks[0], 3))
    with pytest.raises(ValueError, match="iou_threshold"):
        list(iter_propagate(None, None, 0, masks[0], 3, iou_threshold=2))
    with pytest.raises(ValueError, match="directions"):
        list(iter_propagate(None, None, 0, masks[0], 3, directions=(2,)))


def test_with_engine_and_stubnet():
    """End to end with the real InteractiveSession and the analytic StubNet."""
    import napari_fcfi
    from stubnet import StubNet

    predictor = napari_fcfi.Predictor(StubNet(), device="cpu", zoom_in=False, flip=False)
    stack = np.zeros((6, 48, 48), dtype=np.uint8)
    stack[:, :3, :3] = 255
    start = disk(24, 24, 6, (48, 48))
    out = propagate(
        lambda img, fb: napari_fcfi.InteractiveSession(predictor, img, feedback=fb),
        lambda i: stack[i],
        2,
        start,
        6,
    )
    assert sorted(out) == [0, 1, 3, 4, 5]
    for m in out.values():
        assert iou(m, start) > 0.8
