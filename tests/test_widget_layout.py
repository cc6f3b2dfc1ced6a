"""Both dock widgets fit a 1280 x 800 screen, and the image is shown whole on opening."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_both_docks_fit_a_1280_by_800_screen(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((5, 64, 64), np.uint8))  # a stack: every group is shown
    _, fcfi = viewer.window.add_plugin_dock_widget("napari-fcfi", "Interactive segmentation (FCFI)")
    viewer.window.add_plugin_dock_widget("napari-fcfi", "Refine labels (FCFI)")
    window = viewer.window._qt_window
    window.resize(1280, 800)
    for _ in range(5):
        QApplication.processEvents()
    assert fcfi.stack_group.isVisible()
    assert not fcfi.settings_section.isExpanded() and not fcfi.help_section.isExpanded()
    hint = window.minimumSizeHint()
    assert hint.height() <= 800 and hint.width() <= 1280, hint
    assert window.height() <= 800 and window.width() <= 1280, window.size()


def test_annotate_shows_the_whole_image(make_napari_viewer):
    from napari_fcfi._annotate import open_viewer
    from napari_fcfi.cli import build_parser

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    args = build_parser().parse_args(["annotate", "--sample", "nuclei2d_wide"])
    viewer, w = open_viewer(args, viewer=viewer)
    layer = w.image_layer
    h, w_ = layer.data.shape[:2]
    # every corner of the image is inside the visible canvas
    corners = np.array([[0, 0], [0, w_ - 1], [h - 1, 0], [h - 1, w_ - 1]], float)
    native = viewer.window._qt_viewer.canvas.native
    size = np.array([native.height(), native.width()], float)
    zoom = viewer.camera.zoom
    centre = np.array(viewer.camera.center[-2:])
    pos = (corners - centre) * zoom + size / 2
    assert (pos >= -1).all() and (pos <= size + 1).all(), (pos, size)
