"""InteractiveSession: exact undo/redo (across zoom-in recomputes), hand edits, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fcfi import InteractiveSession, Predictor
from stubnet import StubNet

# the session_stubnet scene rebuilt synthetically: a zoom window smaller than the image,
# and a 4th click far away that forces a ROI recompute
CLICKS = [(156, 212, True), (136, 211, True), (135, 233, False), (205, 64, True)]


def _image(shape=(300, 400), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 0.3 + 0.4 * np.exp(-((yy - 150) ** 2 + (xx - 210) ** 2) / 800.0)
    return np.clip(img + rng.normal(0, 0.02, shape), 0, 1).astype(np.float32)


def _predictor(**kw):
    kw = {"zoom_in_target_size": 700, "zoom_in_expansion_ratio": 3.0, **kw}
    return Predictor(StubNet(), device="cpu", **kw)


def _snap(s: InteractiveSession):
    p = s.probability
    return (s.clicks, None if p is None else p.copy(), s.zoom_state, s.mask.copy())


def _same(a, b):
    assert a[0] == b[0]
    if a[1] is None or b[1] is None:
        assert a[1] is None and b[1] is None
    else:
        np.testing.assert_array_equal(a[1], b[1])
    za, zb = a[2], b[2]
    assert za.roi == zb.roi
    assert (za.prev_map is None) == (zb.prev_map is None)
    if za.prev_map is not None:
        assert (za.prev_map.shape, za.prev_map.y0, za.prev_map.x0) == (
            zb.prev_map.shape,
            zb.prev_map.y0,
            zb.prev_map.x0,
        )
        np.testing.assert_array_equal(za.prev_map.data, zb.prev_map.data)
    np.testing.assert_array_equal(a[3], b[3])


def test_undo_redo_exact_across_zoom_recomputes():
    img = _image()
    pred = _predictor()
    s = InteractiveSession(pred, img)
    snaps = [_snap(s)]
    rois = []
    for y, x, p in CLICKS:
        s.add_click(y, x, p)
        snaps.append(_snap(s))
        rois.append(pred.last_prediction.roi)
    assert rois[1] is not None and rois[3] != rois[2], "the scene must recompute the ROI"
    assert not s.can_redo
    for k in range(len(CLICKS) - 1, -1, -1):
        assert s.undo()
        _same(_snap(s), snaps[k])
    assert not s.can_undo and not s.undo()
    for k in range(1, len(CLICKS) + 1):
        assert s.redo()
        _same(_snap(s), snaps[k])
    assert not s.redo()

    # undo to two clicks and go on: identical to a fresh session with the same clicks
    s.undo()
    s.undo()
    other = [(140, 205, False), (220, 300, True)]
    for c in other:
        s.add_click(*c)
    assert not s.can_redo
    fresh = InteractiveSession(pred, img)
    for c in CLICKS[:2] + other:
        fresh.add_click(*c)
    _same(_snap(s), _snap(fresh))


def test_hand_edit_reset_and_finish():
    img = _image()
    s = InteractiveSession(_predictor(), img)
    s.add_click(156, 212, True)
    after_click = _snap(s)
    edit = np.zeros(img.shape, bool)
    edit[100:180, 150:260] = True
    s.set_feedback(edit)
    np.testing.assert_array_equal(s.mask, edit)
    assert s.clicks == after_click[0]
    # the next click feeds the edit back and zooms around it
    s.add_click(170, 240, True)
    prob = s.probability
    assert prob[120:170, 170:240].min() > 0.9  # the stub keeps fed-back pixels
    r0, r1, c0, c1 = s.zoom_state.roi
    assert r0 <= 100 and r1 >= 179 and c0 <= 150 and c1 >= 259
    s.undo()
    np.testing.assert_array_equal(s.mask, edit)
    s.undo()
    _same(_snap(s), after_click)
    s.reset()
    assert s.clicks == [] and s.probability is None and not s.mask.any()
    assert s.undo()
    _same(_snap(s), after_click)
    assert s.finish().dtype == bool


def test_start_from_feedback():
    img = _image()
    start = np.zeros(img.shape, bool)
    start[120:190, 170:250] = True
    s = InteractiveSession(_predictor(), img, feedback=start)
    np.testing.assert_array_equal(s.mask, start)
    s.add_click(150, 210, True)
    assert s.predictor.last_prediction.gate == 1.0
    assert s.probability[130:180, 180:240].min() > 0.9
    s.undo()
    np.testing.assert_array_equal(s.mask, start)


@pytest.mark.parametrize(
    "click",
    [(300, 10, True), (-1, 10, True), (10, 400, True), (np.nan, 3, True), (5, 5, "yes")],
)
def test_bad_click_leaves_session_unchanged(click):
    s = InteractiveSession(_predictor(), _image())
    s.add_click(156, 212, True)
    before = _snap(s)
    with pytest.raises(ValueError):
        s.add_click(*click)
    _same(_snap(s), before)
    assert s.can_undo and not s.can_redo


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.zeros((300, 399), bool), "does not match"),
        (np.zeros((300, 400, 1), bool), "does not match"),
        (np.full((300, 400), np.nan, np.float32), "NaN"),
        (np.full((300, 400), 3.0), r"\[0, 1\]"),
        (None, "None"),
    ],
)
def test_bad_feedback_leaves_session_unchanged(mask, match):
    s = InteractiveSession(_predictor(), _image())
    s.add_click(156, 212, True)
    before = _snap(s)
    with pytest.raises(ValueError, match=match):
        s.set_feedback(mask)
    _same(_snap(s), before)
    assert not s.can_redo


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((20, 20), np.nan, np.float32), "NaN"),
        (np.zeros((0, 20), np.uint8), "empty"),
        (np.zeros((2, 3, 20, 20), np.uint8), "axes"),
        (np.zeros((20, 20, 7), np.uint8), "channels"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_bad_images_raise(image, match):
    pred = _predictor()
    with pytest.raises(ValueError, match=match):
        InteractiveSession(pred, image)
    with pytest.raises(ValueError, match=match):
        pred.predict(image, [(0, 0, True)])


def test_mismatched_start_feedback_raises():
    with pytest.raises(ValueError, match="does not match"):
        InteractiveSession(_predictor(), _image(), feedback=np.zeros((3, 3), bool))


@pytest.mark.parametrize(
    "image",
    [
        np.full((40, 50), 7, np.uint16),  # constant
        np.zeros((1, 1), np.uint8),  # 1x1
        np.eye(30, dtype=bool),  # bool
        np.random.default_rng(0).integers(0, 255, (30, 40, 4)).astype(np.uint8),  # RGBA
        np.array([[-1e300, 0.0], [1e300, 5.0]]),  # extreme range
        np.random.default_rng(1).integers(-(2**40), 2**40, (25, 25)),  # int64
    ],
    ids=["constant", "1x1", "bool", "rgba", "extreme", "int64"],
)
def test_odd_images_work(image):
    s = InteractiveSession(_predictor(zoom_in_target_size=64), image)
    h, w = image.shape[:2]
    for y, x, p in [(0, 0, True), (h - 1, w - 1, False), (h // 2, w // 2, True)]:
        prob = s.add_click(y, x, p)
        assert prob.shape == (h, w) and prob.dtype == np.float32
        assert np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    assert s.finish().shape == (h, w)
