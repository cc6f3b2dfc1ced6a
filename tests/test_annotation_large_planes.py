"""On very large planes the editor reads and writes only the rectangle around its object,
with the same rules as on a whole plane: hand edits near the object are fed back, undo and
reset are exact, other labels are kept, an existing label is followed to its extent."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from _annotation_helpers import dark_image, make_editor
from napari_fcfi.annotation import regions
from napari_fcfi.annotation.predictors import INJECTED, PredictorSettings
from napari_fcfi.annotation.store import ArrayLabelStore
from napari_fcfi.inference.inputs import PreparedImage
from napari_fcfi.inference.lazy import PlaneView


class WatchedStore(ArrayLabelStore):
    """Records the rectangles read and written; whole-plane access is an error."""

    def __init__(self, data):
        super().__init__(data)
        self.reads: list = []
        self.writes: list = []

    def read_plane(self, key):
        raise AssertionError("the editor read a whole plane")

    def write_plane(self, key, plane):
        raise AssertionError("the editor wrote a whole plane")

    def read_region(self, key, rect):
        self.reads.append(rect)
        return super().read_region(key, rect)

    def write_region(self, key, rect, values):
        self.writes.append(rect)
        super().write_region(key, rect, values)


@pytest.fixture
def small_planes(monkeypatch):
    """Planes above 48 x 48 count as large; neighbourhoods are at least 24 px."""
    monkeypatch.setattr(regions, "FULL_PLANE_PIXELS", 48 * 48)
    monkeypatch.setattr(regions, "NEIGHBOURHOOD_MIN", 24)


def _editor(shape=(160, 200), labels=None):
    editor, store = make_editor(dark_image(shape), labels)
    watched = WatchedStore(store.data)
    editor.attach(watched, editor._state.read_image, shape)
    return editor, watched


def _area(rect):
    return (rect[1] - rect[0]) * (rect[3] - rect[2])


def test_a_click_touches_only_the_object_neighbourhood(small_planes):
    editor, store = _editor()
    editor.click((), 80, 100)
    obj = store.data == 1
    assert obj[80, 100] and 40 < obj.sum() < 200
    assert store.reads and store.writes
    assert max(_area(r) for r in store.reads + store.writes) < 0.25 * store.data.size
    ys, xs = np.nonzero(obj)
    for y0, y1, x0, x1 in store.writes:
        assert y0 <= ys.min() and ys.max() < y1 and x0 <= xs.min() and xs.max() < x1


def test_undo_redo_and_reset_are_exact(small_planes):
    labels = np.zeros((160, 200), np.uint32)
    labels[70:90, 110:130] = 3  # a neighbour the object may not take
    editor, store = _editor(labels=labels)
    start = store.data.copy()
    editor.click((), 80, 100)
    one = store.data.copy()
    editor.click((), 80, 150)  # further away: the rectangle grows
    two = store.data.copy()
    assert editor.object_id == 4 and (two == 4)[80, 150] and (two == 3).sum() == 400
    editor.undo(())
    np.testing.assert_array_equal(store.data, one)
    editor.redo(())
    np.testing.assert_array_equal(store.data, two)
    editor.reset()
    np.testing.assert_array_equal(store.data, start)


def test_hand_edits_near_the_object_are_feedback(small_planes):
    editor, store = _editor()
    editor.click((), 80, 100)
    painted = store.read_region((), (60, 70, 90, 110))
    painted[:] = 1  # the user paints with the object's id just above it
    store.write_region((), (60, 70, 90, 110), painted)
    editor.click((), 95, 100)
    obj = store.data == 1
    assert obj[60:70, 90:110].all() and obj[95, 100] and obj[80, 100]


def test_an_existing_label_is_followed_to_its_extent(small_planes):
    labels = np.zeros((160, 200), np.uint32)
    labels[20:140, 30:170] = 7  # far larger than a neighbourhood around the click
    editor, store = _editor(labels=labels)
    editor.click((), 130, 40, False)  # remove a corner of it
    assert editor.object_id == 7
    obj = store.data == 7
    assert not obj[130, 40] and obj[25, 165] and obj[135, 165] and obj[25, 35]
    editor.reset()
    np.testing.assert_array_equal(store.data, labels)


def test_large_image_click_costs_the_object_not_the_image():
    size = 6000
    image = np.zeros((size, size), np.uint8)
    image[:4, :4] = 255
    labels = np.zeros((size, size), np.uint32)
    settings = PredictorSettings(source=INJECTED, device="cpu", flip=False)
    editor, store = make_editor(image, labels, settings=settings)

    def read(key):  # as the widget reads a plane: lazily, with one intensity range
        return PreparedImage(PlaneView(image, tuple(key)), "auto", intensity=(0.0, 255.0))

    editor.attach(store, read, image.shape)
    editor.click((), 3000, 3000)  # warm-up: the model, the first object
    editor.finish()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        editor.click((), 4000, 2000)
        editor.click((), 4005, 2010)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert store.data[4000, 2000] == 2
    # one copy of the plane is 137 MB; the click's arrays stay near the object's size
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MB for a click on a {size}^2 image"
