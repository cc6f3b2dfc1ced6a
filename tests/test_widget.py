"""GUI tests of the FCFI dock widget (napari + Qt under Xvfb), driven with StubNet.

StubNet's logits are ``12*(prev-0.5) + 24*pos_disk - 24*neg_disk + 3*(gray-0.5)``: on a
dark image a positive click gives a disk of radius ~5 px (network-input resolution), a
negative click removes one, and a previous mask (the feedback) persists. That makes every
label change predictable.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gui


def _stub():
    from stubnet import StubNet

    return StubNet()


def _widget(viewer, **kwargs):
    from napari_fcfi._widget import FCFIWidget

    w = FCFIWidget(viewer, model=_stub(), **kwargs)
    viewer.window.add_dock_widget(w)
    # keep the analytic stub's disks in pixel units: no zoom-in, no flip averaging
    w.zoom_check.setChecked(False)
    w.flip_check.setChecked(False)
    w.device_combo.setCurrentText("cpu")
    return w


@pytest.fixture
def viewer2d(make_napari_viewer):
    viewer = make_napari_viewer()
    img = np.zeros((64, 80), dtype=np.uint8)
    img[5:10, 5:10] = 255  # some contrast for the percentile normalisation
    viewer.add_image(img, name="img")
    return viewer


def click(w, coord, positive=True):
    layer = w.clicks_layer
    layer.feature_defaults = {"positive": positive}
    layer.add(coord)
    w.wait()


def test_positive_click_writes_object(viewer2d):
    w = _widget(viewer2d)
    click(w, (30, 40))
    labels = w.labels_layer
    assert labels is not None and labels.name == "FCFI labels"
    assert labels.data.shape == (64, 80)
    obj = labels.data == w.object_id
    assert w.object_id == 1
    assert obj[30, 40]
    assert 40 < obj.sum() < 200  # a disk of radius ~5
    assert set(np.unique(labels.data)) == {0, 1}
    # the clicks layer keeps the point with its polarity
    assert w.clicks_layer.name == "FCFI clicks"
    assert w.clicks_layer.features["positive"].tolist() == [True]


def test_negative_click_removes_pixels(viewer2d):
    # with StubNet a negative click removes feedback pixels that no positive disk covers:
    # start from an existing large label
    seg = np.zeros((64, 80), dtype=np.uint16)
    seg[10:50, 10:70] = 5
    viewer2d.add_labels(seg, name="seg")
    w = _widget(viewer2d)
    w.labels_combo.setCurrentText("seg")
    click(w, (30, 20))
    before = (w.labels_layer.data == 5).sum()
    click(w, (30, 55), positive=False)
    obj = w.labels_layer.data == 5
    assert not obj[30, 55]
    assert obj[30, 20] and obj[15, 40]
    assert before - 120 < obj.sum() < before - 40  # about one disk removed
    assert w.clicks_layer.features["positive"].tolist() == [True, False]


def test_undo_redo_exact(viewer2d):
    w = _widget(viewer2d)
    click(w, (30, 40))
    one = w.labels_layer.data.copy()
    click(w, (30, 50))
    two = w.labels_layer.data.copy()
    assert not np.array_equal(one, two)
    w.undo()
    w.wait()
    np.testing.assert_array_equal(w.labels_layer.data, one)
    assert len(w.clicks_layer.data) == 1
    w.redo()
    w.wait()
    np.testing.assert_array_equal(w.labels_layer.data, two)
    assert len(w.clicks_layer.data) == 2
    # napari's own history undoes our write too
    w.labels_layer.undo()
    np.testing.assert_array_equal(w.labels_layer.data, one)


def test_paint_then_click_uses_feedback(viewer2d):
    w = _widget(viewer2d)
    click(w, (30, 40))
    labels = w.labels_layer
    # hand-paint a block away from the clicks with the object's id
    labels.data_setitem(tuple(np.mgrid[10:20, 60:70].reshape(2, -1)), 1)
    click(w, (50, 20))
    obj = labels.data == 1
    assert obj[10:20, 60:70].all(), "painted pixels are part of the feedback"
    assert obj[50, 20] and obj[30, 40]
    # hand-erase half of the painted block: it stays erased after the next click
    labels.data_setitem(tuple(np.mgrid[10:15, 60:70].reshape(2, -1)), 0)
    click(w, (50, 60))
    obj = labels.data == 1
    assert not obj[10:15, 60:70].any(), "erased pixels stay erased (feedback respected)"
    assert obj[15:20, 60:70].all()
    assert obj[50, 60]


def test_finish_starts_new_object_and_protects_old(viewer2d):
    w = _widget(viewer2d)
    click(w, (30, 40))
    first = w.labels_layer.data == 1
    w.finish_object()
    w.wait()
    assert w.object_id is None
    assert len(w.clicks_layer.data) == 0
    click(w, (30, 46))  # overlaps object 1
    assert w.object_id == 2
    data = w.labels_layer.data
    np.testing.assert_array_equal(data == 1, first)  # object 1 untouched
    assert (data == 2).sum() > 0
    # with "allow overwrite" the new object takes the overlap
    w.overwrite_check.setChecked(True)
    click(w, (30, 45))
    assert (w.labels_layer.data == 1).sum() < first.sum()


def test_click_inside_existing_label_continues_it(viewer2d):
    labels_data = np.zeros((64, 80), dtype=np.uint16)
    labels_data[20:40, 20:40] = 7
    viewer2d.add_labels(labels_data, name="cellpose")
    w = _widget(viewer2d)
    w.labels_combo.setCurrentText("cellpose")
    click(w, (30, 30))
    assert w.object_id == 7
    obj = w.labels_layer.data == 7
    assert obj[20:40, 20:40].all(), "the existing mask is the feedback"
    assert w.labels_layer.data.max() == 7
    # after finishing, a negative first click inside label 7 continues (corrects) it
    w.finish_object()
    w.wait()
    click(w, (25, 36), positive=False)
    assert w.object_id == 7
    assert w.labels_layer.data[25, 36] == 0 and w.labels_layer.data[30, 22] == 7
    # a negative first click on the background starts nothing
    w.finish_object()
    w.wait()
    click(w, (55, 70), positive=False)
    assert w.object_id is None and w.last_error
    assert len(w.clicks_layer.data) == 0


def test_reset_object_restores_before(viewer2d):
    labels_data = np.zeros((64, 80), dtype=np.uint16)
    labels_data[20:40, 20:40] = 3
    viewer2d.add_labels(labels_data, name="seg")
    w = _widget(viewer2d)
    w.labels_combo.setCurrentText("seg")
    click(w, (30, 60))  # new object 4, next to object 3
    click(w, (30, 30))  # inside object 3: not overwritten
    assert (w.labels_layer.data == 4).any()
    w.reset_object()
    w.wait()
    np.testing.assert_array_equal(w.labels_layer.data, labels_data)


def test_stack_click_touches_only_its_slice(make_napari_viewer):
    viewer = make_napari_viewer()
    stack = np.zeros((5, 48, 48), dtype=np.uint8)
    stack[:, 2:6, 2:6] = 255
    layer = viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5), translate=(0, 10, 10))
    w = _widget(viewer)
    k = 3
    viewer.dims.set_point(0, k * 2.0)
    # a point given in world coordinates through the clicks layer (same transform)
    world = (k * 2.0, 10 + 24 * 0.5, 10 + 20 * 0.5)
    click(w, w.clicks_layer.world_to_data(world))
    assert layer.world_to_data(world)[0] == k
    data = w.labels_layer.data
    assert data.shape == (5, 48, 48)
    assert data[k, 24, 20] == 1
    for z in range(5):
        if z != k:
            assert not data[z].any()
    # undo is per slice: on slice 0 there is nothing to undo
    viewer.dims.set_point(0, 0)
    w.undo()
    w.wait()
    assert w.labels_layer.data[k, 24, 20] == 1
    viewer.dims.set_point(0, k * 2.0)
    w.undo()
    w.wait()
    assert not w.labels_layer.data.any()


def test_rgb_image(make_napari_viewer):
    viewer = make_napari_viewer()
    rgb = np.zeros((40, 50, 3), dtype=np.uint8)
    rgb[1:4, 1:4] = 255
    viewer.add_image(rgb, name="rgb", rgb=True)
    w = _widget(viewer)
    click(w, (20, 25))
    assert w.labels_layer.data.shape == (40, 50)
    assert w.labels_layer.data[20, 25] == 1


def test_propagate_through_stack(make_napari_viewer):
    viewer = make_napari_viewer()
    stack = np.zeros((7, 48, 48), dtype=np.uint8)
    stack[:, 1:3, 1:3] = 255
    viewer.add_image(stack, name="stack")
    w = _widget(viewer)
    viewer.dims.set_point(0, 3)
    click(w, (3, 24, 24))
    # a negative "stop" click on slice 6 (where the object is absent)
    viewer.dims.set_point(0, 6)
    click(w, (6, 24, 24), positive=False)
    viewer.dims.set_point(0, 3)
    w.propagate()
    w.wait()
    data = w.labels_layer.data
    for z in range(6):
        assert data[z, 24, 24] == 1, z
    assert not data[6].any(), "propagation stops at the stop click"
    # one undo step removes the whole propagation, redo brings it back
    w.undo()
    w.wait()
    assert [bool(w.labels_layer.data[z].any()) for z in range(7)] == [0, 0, 0, 1, 0, 0, 0]
    w.redo()
    w.wait()
    assert all(w.labels_layer.data[z, 24, 24] == 1 for z in range(6))


def test_cancel_propagation_keeps_done_slices(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    stack = np.zeros((40, 32, 32), dtype=np.uint8)
    stack[:, 1:3, 1:3] = 255
    viewer.add_image(stack, name="stack")
    import napari_fcfi

    def slow_session(predictor, image, feedback=None):
        time.sleep(0.05)  # make the propagation slow enough to cancel half-way
        return napari_fcfi.InteractiveSession(predictor, image, feedback=feedback)

    w = _widget(viewer, session_factory=slow_session)
    viewer.dims.set_point(0, 0)
    click(w, (0, 16, 16))
    w.propagate()
    qtbot.waitUntil(lambda: w.progress.value() >= 3, timeout=20000)
    w.cancel_propagation()
    w.wait()
    done = [z for z in range(40) if w.labels_layer.data[z].any()]
    assert 1 < len(done) < 40
    assert done == list(range(len(done)))
    w.undo()
    w.wait()
    assert [z for z in range(40) if w.labels_layer.data[z].any()] == [0]


def test_deleting_layers_mid_inference_is_safe(viewer2d, qtbot):
    w = _widget(viewer2d)
    click(w, (30, 40))
    layer = w.clicks_layer
    layer.feature_defaults = {"positive": True}
    layer.add((30, 50))  # runs in the background
    viewer2d.layers.remove(w.labels_layer)
    w.wait()
    assert w.labels_layer is None
    assert w.object_id is None
    # and the widget still works: a new click creates a new labels layer
    click(w, (10, 10))
    assert w.labels_layer is not None and w.labels_layer.data[10, 10] == 1
    # removing the clicks layer and the image mid-inference
    w.clicks_layer.add((20, 20))
    viewer2d.layers.remove(w.clicks_layer)
    viewer2d.layers.remove("img")
    w.wait()
    assert w.image_layer is None


def test_quick_clicks_all_apply_in_order(viewer2d, qtbot):
    """Four clicks in quick succession: every one is applied, in order, to one object."""
    w = _widget(viewer2d)
    layer = w.clicks_layer
    for x in (20, 30, 40, 50):
        layer.add((30, x))
    w.wait()
    obj = w.labels_layer.data == 1
    assert all(obj[30, x] for x in (20, 30, 40, 50)), "all clicks applied in order"
    assert w.clicks_layer.features["positive"].tolist() == [True] * 4
    assert set(np.unique(w.labels_layer.data)) == {0, 1}


def test_toggle_polarity_and_shortcuts(viewer2d):
    from napari.layers import Labels, Points
    from napari.utils.key_bindings import KeyBinding

    from napari_fcfi._widget import SHORTCUTS

    w = _widget(viewer2d)
    assert w.toggle_polarity() is False
    clicks = w.clicks_layer
    assert bool(clicks.feature_defaults["positive"].iloc[0]) is False
    click(w, (30, 40), positive=True)
    labels = w.labels_layer
    for key in SHORTCUTS:
        kb = KeyBinding.from_str(key)
        # bound on the viewer and on both of our layers ...
        for target in (viewer2d, clicks, labels):
            assert kb in target.keymap, (key, target)
        # ... and napari binds none of them on Points/Labels layers or the viewer
        for cls in (Points, Labels):
            assert kb not in cls.class_keymap, (key, cls)
        assert kb not in type(viewer2d).class_keymap
    # the key actions work: T toggles, U undoes, Shift-U redoes, N finishes
    default = bool(clicks.feature_defaults["positive"].iloc[0])
    clicks.keymap[KeyBinding.from_str("T")](clicks)
    assert bool(clicks.feature_defaults["positive"].iloc[0]) is (not default)
    labels.keymap[KeyBinding.from_str("U")](labels)
    w.wait()
    assert not labels.data.any()
    clicks.keymap[KeyBinding.from_str("Shift-U")](clicks)
    w.wait()
    assert labels.data[30, 40] == 1
    viewer2d.keymap[KeyBinding.from_str("N")](viewer2d)
    w.wait()
    assert w.object_id is None


def test_model_load_error_is_shown_and_widget_stays_usable(viewer2d, tmp_path):
    from napari_fcfi._widget import FCFIWidget

    w = FCFIWidget(viewer2d)  # no injected model
    viewer2d.window.add_dock_widget(w)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    w.set_checkpoint(str(bad))
    w.clicks_layer.add((30, 40))
    w.wait()
    assert w.last_error
    assert not w.labels_layer.data.any()
    assert len(w.clicks_layer.data) == 0
    with pytest.raises(ValueError):
        w.set_checkpoint(str(tmp_path / "missing.pth"))


def test_annotate_opens_widget_with_sample_and_labels(make_napari_viewer, tmp_path):
    import tifffile

    from napari_fcfi._annotate import open_viewer
    from napari_fcfi.cli import build_parser

    seg = np.zeros((36, 128, 128), dtype=np.uint16)
    seg[10, 40:60, 40:60] = 3
    tifffile.imwrite(tmp_path / "seg.tif", seg)
    viewer = make_napari_viewer()
    args = build_parser().parse_args(
        ["annotate", "--sample", "nuclei3d", "--labels", str(tmp_path / "seg.tif")]
        + ["--objects", "nuclei"]
    )
    viewer, w = open_viewer(args, viewer=viewer)
    assert type(w).__name__ == "FCFIWidget"
    assert w.objects_combo.currentData() == "nuclei"
    assert w.editor.correction_threshold < w.editor.threshold
    assert w.image_layer.name == "nuclei3d"
    assert w.labels_layer.name == "seg"
    assert w.click_mode_check.isChecked()
    assert viewer.layers.selection.active is w.clicks_layer
    bad = build_parser().parse_args(["annotate", str(tmp_path / "missing.tif")])
    with pytest.raises(ValueError, match="does not exist"):
        open_viewer(bad, viewer=viewer)
    bad = build_parser().parse_args(["annotate", "--sample", "nuclei2d", "--objects", "cells"])
    n_layers = len(viewer.layers)
    with pytest.raises(ValueError, match="unknown kind of object 'cells'.*any, nuclei"):
        open_viewer(bad, viewer=viewer)
    assert len(viewer.layers) == n_layers  # refused before anything opened


def test_click_mode_mouse_buttons(viewer2d):
    """Left click: default polarity; right or Ctrl+click: the opposite; a drag pans."""
    from dataclasses import dataclass, field

    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    @dataclass
    class Event:
        type: str
        button: int = 1
        is_dragging: bool = False
        modifiers: list = field(default_factory=list)
        position: tuple = (0, 0)
        pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
        view_direction: list | None = None
        up_direction: list | None = None
        dims_displayed: list = field(default_factory=lambda: [0, 1])

    def press_release(layer, position, button=1, modifiers=(), drag_to=None):
        ev = dict(position=position, button=button, modifiers=list(modifiers))
        mouse_press_callbacks(layer, ReadOnlyWrapper(Event("mouse_press", **ev)))
        end = np.zeros(2)
        if drag_to is not None:
            end = np.asarray(drag_to, dtype=float)
            move = Event("mouse_move", is_dragging=True, pos=end, **ev)
            mouse_move_callbacks(layer, ReadOnlyWrapper(move))
        mouse_release_callbacks(layer, ReadOnlyWrapper(Event("mouse_release", pos=end, **ev)))
        w.wait()

    w = _widget(viewer2d)
    w.click_mode_check.setChecked(True)
    layer = w.clicks_layer
    assert viewer2d.layers.selection.active is layer and layer.mode == "pan_zoom"
    press_release(layer, (30, 40))
    press_release(layer, (30, 20), button=2)
    press_release(layer, (30, 60), modifiers=["Control"])
    press_release(layer, (10, 10), drag_to=(50, 50))  # a pan, not a click
    assert layer.features["positive"].tolist() == [True, False, False]
    w.toggle_polarity()
    press_release(layer, (50, 50))
    assert layer.features["positive"].tolist() == [True, False, False, False]
    assert (w.labels_layer.data == 1)[30, 40]


def test_works_through_public_only_proxy(make_napari_viewer):
    """napari gives plugin widgets a PublicOnlyProxy viewer: no private access allowed."""
    import warnings

    from napari.utils._proxies import PublicOnlyProxy

    from napari_fcfi._widget import FCFIWidget

    viewer = make_napari_viewer()
    stack = np.zeros((5, 40, 40), dtype=np.uint8)
    stack[:, :3, :3] = 255
    viewer.add_image(stack, name="stack")
    seg = np.zeros((5, 40, 40), dtype=np.uint16)
    viewer.add_labels(seg, name="seg")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Private attribute access")
        w = FCFIWidget(PublicOnlyProxy(viewer), model=_stub())
        viewer.window.add_dock_widget(w)
        w.zoom_check.setChecked(False)
        w.flip_check.setChecked(False)
        w.labels_combo.setCurrentText("seg")
        assert w.labels_layer is viewer.layers["seg"]
        viewer.dims.set_point(0, 2)
        click(w, (2, 20, 20))
        w.propagate()
        w.wait()
        assert all(viewer.layers["seg"].data[z, 20, 20] == 1 for z in range(5))
        w.undo()
        w.wait()
        assert [bool(viewer.layers["seg"].data[z].any()) for z in range(5)] == [0, 0, 1, 0, 0]
        w.reset_object()
        w.wait()
        assert not viewer.layers["seg"].data.any()
        viewer.layers.remove("seg")
        w.wait()
        assert w.labels_layer is None


def test_4d_time_and_z(make_napari_viewer):
    """(T, Z, Y, X): a click touches one plane; propagation runs along Z at that time."""
    viewer = make_napari_viewer()
    data = np.zeros((3, 4, 32, 32), dtype=np.uint8)
    data[..., :3, :3] = 255
    viewer.add_image(data, name="tzyx")
    w = _widget(viewer)
    viewer.dims.set_point(0, 1)
    viewer.dims.set_point(1, 2)
    click(w, (1, 2, 16, 16))
    lab = w.labels_layer.data
    assert lab.shape == (3, 4, 32, 32)
    assert lab[1, 2, 16, 16] == 1 and (lab != 0).sum() == (lab[1, 2] != 0).sum()
    w.propagate()
    w.wait()
    lab = w.labels_layer.data
    assert all(lab[1, z, 16, 16] == 1 for z in range(4))
    assert not lab[0].any() and not lab[2].any()


def test_switching_images(viewer2d):
    w = _widget(viewer2d)
    click(w, (30, 40))
    labels2d = w.labels_layer
    stack = np.zeros((3, 20, 20), dtype=np.uint8)
    stack[:, :2, :2] = 255
    viewer2d.add_image(stack, name="stack")
    w.image_combo.setCurrentText("stack")
    assert w.object_id is None
    assert w.labels_layer is None  # the 2-D labels do not fit the stack
    click(w, (1, 10, 10))
    assert w.clicks_layer.ndim == 3
    assert w.labels_layer is not labels2d and w.labels_layer.data.shape == (3, 20, 20)
    assert w.labels_layer.data[1, 10, 10] == 1
    assert labels2d.data[30, 40] == 1  # the first result is untouched


def test_real_mouse_clicks_on_canvas(make_napari_viewer, qtbot):
    """Qt mouse events on the canvas: left = positive, right and Ctrl+left = negative."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    viewer = make_napari_viewer(show=True)
    img = np.zeros((64, 64), np.uint8)
    img[:3, :3] = 255
    viewer.add_image(img)
    w = _widget(viewer)
    w.click_mode_check.setChecked(True)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.waitExposed(canvas)
    c = QPoint(canvas.width() // 2, canvas.height() // 2)
    for button, mod, offset in (
        (Qt.LeftButton, Qt.NoModifier, QPoint(0, 0)),
        (Qt.RightButton, Qt.NoModifier, QPoint(40, 0)),
        (Qt.LeftButton, Qt.ControlModifier, QPoint(0, 40)),
    ):
        QTest.mousePress(canvas, button, mod, c + offset)
        QTest.mouseRelease(canvas, button, mod, c + offset)
        w.wait()
    assert w.clicks_layer.features["positive"].tolist() == [True, False, False]
    y, x = np.round(w.clicks_layer.data[0]).astype(int)
    assert abs(y - 32) <= 2 and abs(x - 32) <= 2
    assert w.labels_layer.data[y, x] == 1


def test_canvas_clicks_with_the_labels_layer_selected(make_napari_viewer, qtbot):
    """Labels selected in pan/zoom mode: a canvas click segments. Labels in paint mode: the
    click paints, and the widget says at once why FCFI did not get it."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    viewer = make_napari_viewer(show=True)
    img = np.zeros((64, 64), np.uint8)
    img[:3, :3] = 255
    viewer.add_image(img)
    w = _widget(viewer)
    assert w.click_mode_check.isChecked(), "click mode is on when the widget opens"
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.waitExposed(canvas)
    c = QPoint(canvas.width() // 2, canvas.height() // 2)
    w._ensure_layers()
    viewer.layers.selection.active = w.labels_layer
    w.labels_layer.mode = "pan_zoom"
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, c)
    w.wait()
    assert len(w.clicks_layer.data) == 1 and w.labels_layer.data.any()
    assert w.last_error is None
    n_labelled = int(np.count_nonzero(w.labels_layer.data))
    viewer.layers.selection.active = w.labels_layer
    w.labels_layer.mode = "paint"
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, c + QPoint(0, 60))
    w.wait()
    assert len(w.clicks_layer.data) == 1, "a paint-mode click is not an FCFI click"
    assert w.last_error is not None and "paint mode" in w.last_error
    assert np.count_nonzero(w.labels_layer.data) >= n_labelled  # the click painted


def test_objects_choice_sets_both_thresholds(viewer2d):
    from napari_fcfi._widget import FCFIWidget
    from napari_fcfi.annotation.predictors import builtin_thresholds
    from stubnet import SoftStub

    w = FCFIWidget(viewer2d, model=SoftStub())
    viewer2d.window.add_dock_widget(w)
    w.zoom_check.setChecked(False)
    w.flip_check.setChecked(False)
    w.device_combo.setCurrentText("cpu")
    presets = builtin_thresholds()
    assert w.objects_combo.currentData() == "any"
    assert (w.threshold_spin.value(), w.correction_spin.value()) == presets["any"]
    w.panel.set_objects("nuclei")
    assert (w.threshold_spin.value(), w.correction_spin.value()) == presets["nuclei"]
    assert (w.editor.threshold, w.editor.correction_threshold) == presets["nuclei"]
    # the kind of object reaches the predictor too (a preset's other settings)
    assert w.panel.predictor_settings().objects == "nuclei"
    click(w, (30, 40))
    area = (w.labels_layer.data == 1).sum()
    assert 40 < area < 200  # the first answer: the first-click threshold
    # a correction threshold below the background probability: the next answer takes all
    w.correction_spin.setValue(0.2)
    w.wait()
    assert (w.labels_layer.data == 1).sum() == area
    click(w, (5, 5), positive=False)
    assert (w.labels_layer.data == 1).sum() > 10 * area
    with pytest.raises(ValueError, match="unknown kind of object 'cells'"):
        w.panel.set_objects("cells")


def test_threshold_and_settings_changes(viewer2d):
    from napari_fcfi._widget import FCFIWidget
    from stubnet import SoftStub

    w = FCFIWidget(viewer2d, model=SoftStub())
    viewer2d.window.add_dock_widget(w)
    w.zoom_check.setChecked(False)
    w.flip_check.setChecked(False)
    w.device_combo.setCurrentText("cpu")
    click(w, (30, 40))
    area = (w.labels_layer.data == 1).sum()
    assert 40 < area < 200
    # a threshold below the background probability takes everything, at once
    w.threshold_spin.setValue(0.2)
    w.wait()
    assert (w.labels_layer.data == 1).sum() > 10 * area
    w.threshold_spin.setValue(0.49)
    w.wait()
    assert (w.labels_layer.data == 1).sum() == area
    # a predictor setting change drops the click history but keeps the pixels, which
    # become the feedback of the next click
    w.flip_check.setChecked(True)
    w.wait()
    assert len(w.clicks_layer.data) == 0
    click(w, (30, 55))
    obj = w.labels_layer.data == 1
    assert obj[30, 40] and obj[30, 55]
    # a device that is not available is reported, nothing crashes

    if not torch.cuda.is_available():
        w.device_combo.setCurrentText("cuda")
        w.wait()
        click(w, (10, 10))
        assert "CUDA" in w.last_error
        w.device_combo.setCurrentText("cpu")


def test_builtin_model_segments_in_the_widget(viewer2d):
    """The widget opens on the built-in model, which ships with the package and segments."""
    from pathlib import Path

    import napari_fcfi
    from napari_fcfi._widget import FCFIWidget

    w = FCFIWidget(viewer2d)
    viewer2d.window.add_dock_widget(w)
    w.device_combo.setCurrentText("cpu")
    assert w.model_combo.currentText().startswith("Built-in")
    click(w, (30, 40))
    weights = Path(napari_fcfi.__file__).parent / "weights" / "fcfi-lite.safetensors"
    assert weights.is_file(), "the built-in weights must ship with the package"
    assert w.last_error is None
    assert len(w.clicks_layer.data) == 1
    assert w.labels_layer.data.any()


def test_large_plane_is_edited_in_the_object_rectangle(make_napari_viewer):
    # 2100 x 2100 is above the whole-plane limit: the editor works around the object
    from napari_fcfi.annotation import regions

    size = 2100
    assert size * size > regions.FULL_PLANE_PIXELS
    viewer = make_napari_viewer()
    img = np.zeros((size, size), dtype=np.uint8)
    img[5:10, 5:10] = 255
    viewer.add_image(img, name="img")
    w = _widget(viewer)
    click(w, (1000, 1000))
    labels = w.labels_layer
    one = labels.data.copy()
    assert labels.data[1000, 1000] == 1 and 40 < (labels.data == 1).sum() < 200
    # a hand edit next to the object is its feedback
    labels.data_setitem(tuple(np.mgrid[980:990, 995:1005].reshape(2, -1)), 1)
    click(w, (1020, 1000))
    two = labels.data.copy()
    obj = two == 1
    assert obj[980:990, 995:1005].all() and obj[1020, 1000] and obj[1000, 1000]
    w.undo()  # back to the hand-edited mask, exactly
    w.wait()
    painted = one.copy()
    painted[980:990, 995:1005] = 1
    np.testing.assert_array_equal(labels.data, painted)
    labels.undo()  # napari's own history: the editor's undo was one step of it
    np.testing.assert_array_equal(labels.data, two)
