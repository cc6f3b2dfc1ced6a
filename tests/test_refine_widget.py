"""The "Refine labels (FCFI)" dock widget (napari, under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from _refine_helpers import BrightNet, blobs_image, disk_labels

pytestmark = pytest.mark.gui


def _data(n=3):
    truth = np.stack(
        [disk_labels(centers=((16, 16 + i), (16, 44), (44, 30 - i)), radius=10) for i in range(n)]
    )
    img = np.stack([blobs_image(t, seed=i) for i, t in enumerate(truth)])
    eroded = np.stack(
        [np.where(ndi.grey_erosion(t, size=(5, 5)) == t, t, 0) for t in truth]
    ).astype(np.uint16)
    return img, truth, eroded


def _expected(img, labels, slices=None):
    from napari_fcfi.stack import refine_labels
    from napari_fcfi.stack.refine import default_predictor

    return refine_labels(img, labels, default_predictor(BrightNet()), slices=slices)[0]


@pytest.fixture
def setup(make_napari_viewer):
    from napari_fcfi._refine_widget import RefineWidget

    viewer = make_napari_viewer()
    img, truth, eroded = _data()
    viewer.add_image(img, name="nuclei")
    layer = viewer.add_labels(eroded.copy(), name="rough")
    from napari.utils._proxies import PublicOnlyProxy

    # napari hands plugin widgets a PublicOnlyProxy of the viewer
    widget = RefineWidget(PublicOnlyProxy(viewer), model=BrightNet())
    viewer.window.add_dock_widget(widget)
    return viewer, widget, layer, img, truth, eroded


def test_refine_all_then_undo_in_one_step(setup, qtbot):
    viewer, widget, layer, img, truth, eroded = setup
    assert widget.image_combo.currentText() == "nuclei"
    assert widget.labels_combo.currentText() == "rough"
    widget.run_button.click()
    assert widget.running and widget.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    expected = _expected(img, eroded)
    np.testing.assert_array_equal(layer.data, expected)
    assert (expected != eroded).sum() > 100  # it really changed something
    assert len(widget.report) == 9 and "3 slice(s) written" in widget.status.text()
    # the refinement moved towards the true disks
    for z in range(3):
        for lab in (1, 2, 3):
            before = ((eroded[z] == lab) & (truth[z] == lab)).sum() / (
                (eroded[z] == lab) | (truth[z] == lab)
            ).sum()
            m = (layer.data[z] == lab, truth[z] == lab)
            assert (m[0] & m[1]).sum() / (m[0] | m[1]).sum() > before
    layer.undo()
    np.testing.assert_array_equal(layer.data, eroded)
    layer.redo()
    np.testing.assert_array_equal(layer.data, expected)


def test_cancel_writes_only_finished_slices(setup, qtbot):
    viewer, widget, layer, img, truth, eroded = setup
    worker = widget.refine_all()
    worker.yielded.connect(lambda item: widget.cancel())  # cancel once slice 0 is done
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert "cancelled" in widget.status.text()
    done = [z for z in range(3) if (layer.data[z] != eroded[z]).any()]
    assert done and done == list(range(len(done))) and len(done) < 3
    expected = _expected(img, eroded, slices=slice(0, len(done)))
    np.testing.assert_array_equal(layer.data, expected)
    layer.undo()
    np.testing.assert_array_equal(layer.data, eroded)


def test_slice_edited_during_run_is_not_overwritten(setup, qtbot):
    viewer, widget, layer, img, truth, eroded = setup

    def edit(item):
        if item[0] == (0,):
            layer.data[0, 0, 0] = 7  # the user paints on a slice that is already refined

    worker = widget.refine_all()
    worker.yielded.connect(edit)
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert widget.skipped == [(0,)]
    assert layer.data[0, 0, 0] == 7 and (layer.data[0, 1:] == eroded[0, 1:]).all()
    np.testing.assert_array_equal(layer.data[1:], _expected(img, eroded)[1:])


def test_bad_layers_message(make_napari_viewer):
    from napari_fcfi._refine_widget import RefineWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 32, 32)), name="img")
    viewer.add_labels(np.zeros((2, 30, 32), np.uint8), name="lab")
    widget = RefineWidget(viewer, model=BrightNet())
    assert widget.refine_all() is None
    assert "does not match labels shape" in widget.status.text()
    assert not widget.running


def test_opens_from_the_plugin_manifest(make_napari_viewer):
    from napari_fcfi._refine_widget import RefineWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 32, 32)), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-fcfi", "Refine labels (FCFI)")
    assert isinstance(widget, RefineWidget)
    assert widget.image_combo.currentText() == "img" and widget.labels_combo.count() == 0
    assert widget.refine_all() is None and "labels layer" in widget.status.text()


def test_widget_defaults_are_the_refine_options(make_napari_viewer):
    from napari_fcfi._refine_widget import RefineWidget
    from napari_fcfi.stack.options import RefineOptions

    defaults = RefineOptions()
    w = RefineWidget(make_napari_viewer(), model=BrightNet())
    assert w.min_size.value() == defaults.min_size
    assert w.extra_clicks.value() == defaults.extra_clicks
    assert w.click_distance.value() == defaults.click_distance
    assert w.margin.value() == defaults.margin
