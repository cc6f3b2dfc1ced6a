"""Tests of napari_fcfi.stack.refine (batch refinement of label stacks)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from _refine_helpers import BrightNet, FakePredictor, blobs_image, disk_labels, stub_predictor
from napari_fcfi.masks import interior_point
from napari_fcfi.stack import RefineCancelled, refine_labels
from napari_fcfi.stack.refine import default_predictor, iter_refine, refine_slice


def _stack(n=3):
    labs = [
        disk_labels(centers=((16, 16 + i), (16, 44), (44, 30 - i)), ids=[3, 70, 1000])
        for i in range(n)
    ]
    lab = np.stack(labs)
    img = np.stack([blobs_image(x, seed=i) for i, x in enumerate(labs)])
    return img, lab


def _square(lab, y0, y1, x0, x1, value):
    lab[y0:y1, x0:x1] = value
    return lab


def test_stack_numpy_ids_and_report():
    img, lab = _stack()
    out, report = refine_labels(img, lab, stub_predictor())
    assert out.shape == lab.shape and out.dtype == lab.dtype
    for z in range(lab.shape[0]):
        assert set(np.unique(out[z])) == {0, 3, 70, 1000}
    assert len(report) == 9
    assert {(r.slice, r.label) for r in report} == {
        ((z,), i) for z in range(3) for i in (3, 70, 1000)
    }
    for r in report:
        old, new = lab[r.slice] == r.label, out[r.slice] == r.label
        assert r.area_old == old.sum() and r.area_new == new.sum()
        assert r.changed_pixels == (old ^ new).sum()
        assert r.iou == pytest.approx((old & new).sum() / (old | new).sum())
        assert r.status == "refined" and r.clicks >= 1
    # the stub network reproduces its feedback: clean disks stay (almost) unchanged
    assert np.mean([r.iou for r in report]) > 0.95


def test_dask_input_matches_numpy_and_rgb_channels():
    img, lab = _stack()
    ref, ref_report = refine_labels(img, lab, stub_predictor())
    out, report = refine_labels(
        da.from_array(img, chunks=(1, 32, 32)),
        da.from_array(lab, chunks=(1, 64, 64)),
        stub_predictor(),
    )
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, ref)
    assert [r.as_dict() for r in report] == [r.as_dict() for r in ref_report]
    rgb = np.repeat(img[..., None], 3, axis=-1)
    out_rgb, _ = refine_labels(rgb, lab, stub_predictor())
    np.testing.assert_array_equal(out_rgb, ref)


def test_slices_and_progress_and_out():
    img, lab = _stack(4)
    seen = []
    out = np.full_like(lab, 7)
    res, report = refine_labels(
        img,
        lab,
        FakePredictor(lab[0]),
        slices=slice(1, 3),
        out=out,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert res is out
    assert seen == [(1, 2), (2, 2)]
    assert {r.slice for r in report} == {(1,), (2,)}
    assert (out[0] == 7).all() and (out[3] == 7).all()


def test_interior_point_is_deepest():
    m = np.zeros((20, 30), bool)
    m[2:18, 3:10] = True  # thin bar
    m[4:16, 12:28] = True  # thicker block
    y, x = interior_point(m)
    assert m[y, x] and 12 <= x < 28 and 8 <= y <= 11


def test_ownership_higher_probability_wins():
    lab = np.zeros((40, 40), np.uint8)
    _square(lab, 10, 30, 5, 18, 1)
    _square(lab, 10, 30, 18, 32, 2)
    grow1 = np.zeros(lab.shape, np.float32)
    grow1[10:30, 5:24] = 0.8  # object 1 claims 6 columns of object 2 with p = 0.8
    own2 = np.where(lab == 2, 0.9, 0.0).astype(np.float32)
    out, _ = refine_slice(
        np.zeros(lab.shape), lab, FakePredictor(lab, {1: grow1, 2: own2}), margin=0
    )
    np.testing.assert_array_equal(out, lab)  # 0.8 < 0.9: object 2 keeps its pixels

    weak2 = np.where(lab == 2, 0.6, 0.0).astype(np.float32)
    out, rep = refine_slice(
        np.zeros(lab.shape), lab, FakePredictor(lab, {1: grow1, 2: weak2}), margin=0
    )
    assert (out[10:30, 5:24] == 1).all() and (out[10:30, 24:32] == 2).all()
    assert {r.label: r.changed_pixels for r in rep} == {1: 120, 2: 120}

    tie = np.where(lab == 2, 0.8, 0.0).astype(np.float32)
    out, _ = refine_slice(
        np.zeros(lab.shape), lab, FakePredictor(lab, {1: grow1, 2: tie}), margin=0
    )
    np.testing.assert_array_equal(out, lab)  # on a tie the owner keeps the pixel


def test_small_objects_kept_and_never_taken():
    lab = np.zeros((40, 40), np.uint16)
    _square(lab, 5, 35, 5, 25, 5)
    _square(lab, 15, 19, 25, 29, 9)  # 16 px < min_size
    grab = np.zeros(lab.shape, np.float32)
    grab[5:35, 5:35] = 0.99  # object 5 would swallow object 9
    pred = FakePredictor(lab, {5: grab})
    out, rep = refine_slice(np.zeros(lab.shape), lab, pred, min_size=20, extra_clicks=0)
    assert (out[lab == 9] == 9).all() and (out == 9).sum() == 16
    assert (out[5:35, 29:35] == 5).all()  # it grows elsewhere
    assert [lab_ for lab_, _ in pred.calls] == [5]  # the small one is never predicted
    by_id = {r.label: r for r in rep}
    assert by_id[9].status == "small" and by_id[9].iou == 1.0 and by_id[9].clicks == 0


def test_failed_refinement_keeps_mask():
    lab = disk_labels()
    empty = np.zeros(lab.shape, np.float32)
    out, rep = refine_slice(np.zeros(lab.shape), lab, FakePredictor(lab, {2: empty}))
    np.testing.assert_array_equal(out, lab)
    assert {r.label: r.status for r in rep} == {1: "refined", 2: "failed", 3: "refined"}


def test_extra_click_where_masks_disagree_strongly():
    lab = np.zeros((60, 60), np.uint8)
    _square(lab, 10, 50, 10, 50, 1)
    half = np.zeros(lab.shape, np.float32)
    half[10:50, 10:30] = 0.9  # misses a 40x20 block: depth 10 px > click_distance
    pred = FakePredictor(lab, {1: half})
    _, rep = refine_slice(np.zeros(lab.shape), lab, pred, click_distance=5)
    assert len(pred.calls) == 2
    clicks = pred.calls[1][1]
    assert len(clicks) == 2 and clicks[1][2] is True  # positive: the refinement missed it
    assert 10 <= clicks[1][0] < 50 and 30 <= clicks[1][1] < 50
    assert rep[0].clicks == 2

    # a thin boundary correction (2 px) gets no extra click, nor does extra_clicks=0
    thin = np.zeros(lab.shape, np.float32)
    thin[12:48, 12:48] = 0.9
    pred = FakePredictor(lab, {1: thin})
    out, _ = refine_slice(np.zeros(lab.shape), lab, pred, click_distance=5)
    assert len(pred.calls) == 1 and (out == 1).sum() == 36 * 36
    pred = FakePredictor(lab, {1: half})
    refine_slice(np.zeros(lab.shape), lab, pred, extra_clicks=0)
    assert len(pred.calls) == 1


def test_far_fragments_dropped():
    lab = np.zeros((60, 60), np.uint8)
    _square(lab, 5, 20, 5, 20, 4)
    prob = np.zeros(lab.shape, np.float32)
    prob[5:21, 5:21] = 0.9
    prob[40:55, 40:55] = 0.9  # a disconnected blob far from the object
    out, _ = refine_slice(np.zeros(lab.shape), lab, FakePredictor(lab, {4: prob}), extra_clicks=0)
    assert (out[40:55, 40:55] == 0).all() and (out[5:21, 5:21] == 4).all()


def test_cancel_keeps_finished_slices_only():
    img, lab = _stack(4)
    out = np.zeros_like(lab)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 3  # slice 0 polls before the slice and its one batch

    with pytest.raises(RefineCancelled) as err:
        refine_labels(img, lab, FakePredictor(lab[0]), out=out, cancel=cancel)
    assert err.value.completed == [(0,)]
    assert {r.slice for r in err.value.report} == {(0,)}
    assert (out[0] > 0).any() and (out[1:] == 0).all()


def test_bad_input_raises_value_error():
    img, lab = _stack(2)
    pred = FakePredictor(lab[0])
    with pytest.raises(ValueError, match="does not match labels shape"):
        refine_labels(img[:, :-1], lab, pred)
    with pytest.raises(ValueError, match="integer"):
        refine_labels(img, lab.astype(np.float32), pred)
    with pytest.raises(ValueError, match="negative"):
        refine_labels(img, lab.astype(np.int16) - 1, pred)
    with pytest.raises(ValueError, match="out of range"):
        refine_labels(img, lab, pred, slices=[5])


def test_refinement_repairs_degraded_labels():
    """With a network that segments bright objects, eroded and dilated labels move back
    to the true objects, and touching neighbours keep their own pixels."""
    truth = disk_labels(centers=((16, 16), (16, 36), (44, 30)), radius=10)  # 1 and 2 touch
    img = blobs_image(truth)
    bad = np.zeros_like(truth)
    bad[ndi.binary_erosion(truth == 1, iterations=3)] = 1
    bad[ndi.binary_dilation(truth == 2, iterations=2) & (bad == 0)] = 2
    bad[ndi.binary_erosion(truth == 3, iterations=2)] = 3
    out, rep = refine_labels(img, bad, default_predictor(BrightNet()))

    def iou(a, b, i):
        return ((a == i) & (b == i)).sum() / ((a == i) | (b == i)).sum()

    for i in (1, 2, 3):
        assert iou(out, truth, i) > iou(bad, truth, i) + 0.05
        assert iou(out, truth, i) > 0.85
    assert all(r.status == "refined" and r.changed_pixels > 0 for r in rep)


def test_margin_keeps_current_mask_where_network_is_unsure():
    lab = np.zeros((40, 40), np.uint8)
    _square(lab, 10, 30, 10, 30, 1)
    prob = np.where(lab == 1, 0.95, 0.0).astype(np.float32)
    prob[10:30, 6:10] = 0.6  # unsure growth on the left
    prob[10:30, 26:30] = 0.4  # unsure removal on the right
    pred = FakePredictor(lab, {1: prob})
    out, _ = refine_slice(np.zeros(lab.shape), lab, pred, margin=0.2, extra_clicks=0)
    np.testing.assert_array_equal(out, lab)  # 0.4 and 0.6 are within 0.49 +- 0.2
    out, _ = refine_slice(np.zeros(lab.shape), lab, pred, margin=0.05, extra_clicks=0)
    expected = np.zeros_like(lab)
    expected[10:30, 6:26] = 1
    np.testing.assert_array_equal(out, expected)


def test_out_dtype_must_hold_every_id():
    """Ids 254-257 used to be written into a uint8 ``out`` as 254, 255, 0, 1."""
    lab = disk_labels(
        shape=(64, 64), centers=((16, 16), (16, 44), (44, 16), (44, 44)), ids=[254, 255, 256, 257]
    )
    img = blobs_image(lab)
    out = np.zeros(lab.shape, np.uint8)
    with pytest.raises(ValueError, match="cannot hold the label ids"):
        refine_labels(img, lab, FakePredictor(lab), out=out)
    assert (out == 0).all()  # refused before anything was written
    with pytest.raises(ValueError, match="cannot hold"):
        refine_labels(
            img, lab.astype(np.uint32), FakePredictor(lab), out=np.zeros(lab.shape, np.float32)
        )
    # a wider dtype, or a narrower one that still holds the ids present, is fine
    res, _ = refine_labels(img, lab, FakePredictor(lab), out=np.zeros(lab.shape, np.int32))
    np.testing.assert_array_equal(res, lab)
    small = np.where(lab > 0, lab - 200, 0).astype(np.uint16)
    res, _ = refine_labels(img, small, FakePredictor(small), out=np.zeros(lab.shape, np.uint8))
    np.testing.assert_array_equal(res, small)


@pytest.mark.parametrize(
    "option, value",
    [
        ("margin", float("nan")),
        ("margin", 1.5),
        ("margin", -0.1),
        ("min_iou", float("nan")),
        ("click_distance", float("inf")),
        ("extra_clicks", -1),
        ("min_size", 2.5),
        ("batch_size", 0),
    ],
)
def test_nan_and_out_of_range_options_are_refused(option, value):
    """A NaN margin used to make every object "failed", with no error."""
    img, lab = _stack(2)
    out = np.zeros_like(lab)
    with pytest.raises(ValueError, match=option):
        refine_labels(img, lab, FakePredictor(lab[0]), out=out, **{option: value})
    assert (out == 0).all()
    with pytest.raises(ValueError, match=option):
        refine_slice(img[0], lab[0], FakePredictor(lab[0]), **{option: value})
    with pytest.raises(ValueError, match=option):
        next(iter_refine(img, lab, FakePredictor(lab[0]), **{option: value}))


def test_negative_ids_refused_before_anything_is_written():
    img, lab = _stack(3)
    bad = lab.astype(np.int32)
    bad[2, 0, 0] = -1  # only the last slice is bad
    out = np.zeros_like(bad)
    with pytest.raises(ValueError, match="negative"):
        refine_labels(img, bad, FakePredictor(lab[0]), out=out)
    assert (out == 0).all()


def test_one_options_dataclass_for_every_entry_point():
    from napari_fcfi.stack.options import RefineOptions

    img, lab = _stack(2)
    opts = RefineOptions(margin=0.2, extra_clicks=0)
    assert RefineOptions.of(opts, min_size=3) == RefineOptions(
        min_size=3, margin=0.2, extra_clicks=0
    )
    with pytest.raises(TypeError, match="marign"):
        RefineOptions.of(None, marign=0.1)
    with pytest.raises(TypeError, match="marign"):
        refine_labels(img, lab, FakePredictor(lab[0]), marign=0.1)
    # an options object gives the same result as the same options as keywords
    a, _ = refine_labels(img, lab, FakePredictor(lab[0]), opts)
    b, _ = refine_labels(img, lab, FakePredictor(lab[0]), margin=0.2, extra_clicks=0)
    np.testing.assert_array_equal(a, b)
