"""Fast input in the dock widget: commands given faster than the network answers are
applied in order and no object is lost (napari + Qt under Xvfb, StubNet)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _widget(viewer, **kwargs):
    from napari_fcfi._widget import FCFIWidget
    from stubnet import StubNet

    w = FCFIWidget(viewer, model=StubNet(), **kwargs)
    viewer.window.add_dock_widget(w)
    w.zoom_check.setChecked(False)
    w.flip_check.setChecked(False)
    w.device_combo.setCurrentText("cpu")
    return w


def _image():
    img = np.zeros((64, 64), np.uint8)
    img[:3, :3] = 255
    return img


def test_click_finish_click_without_waiting_keeps_both_objects(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(_image(), name="img")
    w = _widget(viewer)
    w.add_click((20, 20))
    w.finish_object()
    w.add_click((44, 44))
    w.wait()
    data = w.labels_layer.data
    assert data[20, 20] == 1 and data[44, 44] == 2
    assert w.object_id == 2 and w.clicks_layer.features["positive"].tolist() == [True]
    # the pattern of the user guide: wait, finish, click at once
    w.add_click((44, 20))
    w.wait()
    w.finish_object()
    w.add_click((20, 44))
    w.wait()
    assert w.labels_layer.data[20, 44] == 3


def test_real_click_n_click_within_100_ms(make_napari_viewer, qtbot):
    """Mouse click, the N key and another mouse click as Qt events on the canvas, within
    100 ms, while the first click's network work is still running."""
    import time

    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    from napari_fcfi.inference.session import InteractiveSession

    def slow_session(predictor, image, feedback=None):
        time.sleep(0.3)  # a network slower than the hand
        return InteractiveSession(predictor, image, feedback=feedback)

    viewer = make_napari_viewer(show=True)
    viewer.add_image(_image(), name="img")
    w = _widget(viewer, session_factory=slow_session)
    assert w.click_mode_check.isChecked(), "click mode is on when the widget opens"
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.waitExposed(canvas)
    c = QPoint(canvas.width() // 2, canvas.height() // 2)
    step = QPoint(0, int(18 * viewer.camera.zoom))  # 18 image pixels down the canvas
    # the labels layer exists before the timed input (as after any first object)
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, c - step)
    w.wait()
    w.finish_object()
    canvas.setFocus()
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, c)
    t0 = time.monotonic()
    QTest.keyClick(canvas, Qt.Key_N)
    elapsed = time.monotonic() - t0
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, c + step)
    assert elapsed < 0.1, f"N came {elapsed:.3f} s after the click"
    assert w.busy, "the input came faster than the network"
    w.wait()
    assert w.last_error is None
    assert w.clicks_layer.features["positive"].tolist() == [True]
    assert set(np.unique(w.labels_layer.data).tolist()) == {0, 1, 2, 3}, "no object lost"
    assert w.object_id == 3
