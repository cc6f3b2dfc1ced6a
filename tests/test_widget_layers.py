"""Layer helpers of the widget (napari layers, no Qt needed)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels  # noqa: E402

from napari_fcfi import _layers  # noqa: E402


def test_compose_object_protects_other_objects():
    plane = np.zeros((6, 6), np.uint16)
    plane[0:3, 0:3] = 2  # another object
    plane[4, 4] = 5  # the object's old pixel
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    new = _layers.compose_object(plane, mask, 5, allow_overwrite=False)
    assert (new[0:3, 0:3] == 2).all(), "other object kept"
    assert new[3, 3] == 5 and new[4, 4] == 5
    assert (new == 5).sum() == 16 - 4
    over = _layers.compose_object(plane, mask, 5, allow_overwrite=True)
    assert (over == 5).sum() == 16 and (over == 2).sum() == 5
    # pixels of the object outside the new mask become background
    plane[5, 5] = 5
    assert _layers.compose_object(plane, mask, 5, False)[5, 5] == 0
    with pytest.raises(ValueError, match="shape"):
        _layers.compose_object(plane, mask[:3], 5, False)


def test_write_object_is_one_undo_step_on_one_slice():
    img = Image(np.zeros((3, 8, 8)), scale=(2, 1, 1))
    labels = _layers.make_labels_layer(img)
    assert labels.data.shape == (3, 8, 8) and tuple(labels.scale) == (2, 1, 1)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:6] = True
    got = _layers.write_object(labels, (1,), mask, 4, allow_overwrite=False)
    np.testing.assert_array_equal(got, mask)
    assert (labels.data[1] == 4).sum() == 12 and not labels.data[[0, 2]].any()
    labels.undo()
    assert not labels.data.any()
    labels.redo()
    assert (labels.data[1] == 4).sum() == 12
    # nothing to change: no history entry
    assert _layers.set_plane(labels, (1,), labels.data[1].copy()) == 0


def test_layer_geometry_helpers():
    rgb = Image(np.zeros((2, 10, 12, 3), np.uint8), rgb=True)
    assert _layers.spatial_shape(rgb) == (2, 10, 12)
    clicks = _layers.make_clicks_layer(rgb)
    assert clicks.ndim == 3 and clicks.name == "FCFI clicks"
    clicks.add((1, 5, 5))
    assert clicks.features["positive"].tolist() == [True]
    with pytest.raises(ValueError, match="shape"):
        _layers.check_labels_match(rgb, Labels(np.zeros((10, 12), np.uint8)))
    assert _layers.next_free_id(Labels(np.array([[0, 3], [7, 0]]))) == 8
    assert _layers.image_slice(rgb, (1,)).shape == (10, 12, 3)


# ---------------------------------------------------------------- the widget's label store
def test_napari_store_writes_only_its_region_as_one_undo_step():
    from napari_fcfi._qt.store import NapariLabelStore

    labels = Labels(np.zeros((2, 30, 40), np.uint32))
    labels.data[1, 0, 0] = 3  # outside the region: never touched
    store = NapariLabelStore(labels)
    values = np.zeros((5, 6), np.uint32)
    values[1:4, 2:5] = 7
    store.write_region((1,), (10, 15, 20, 26), values)
    np.testing.assert_array_equal(store.read_region((1,), (10, 15, 20, 26)), values)
    assert (labels.data == 7).sum() == 9 and labels.data[1, 0, 0] == 3
    labels.undo()
    assert not (labels.data == 7).any() and labels.data[1, 0, 0] == 3
    with pytest.raises(ValueError, match="shape"):
        store.write_region((1,), (10, 15, 20, 26), values[:2])


def test_napari_store_largest_label_follows_every_change():
    from napari_fcfi._qt.store import NapariLabelStore

    labels = Labels(np.zeros((30, 40), np.uint32))
    store = NapariLabelStore(labels)
    assert store.max_label() == 0
    store.write_region((), (0, 2, 0, 2), np.full((2, 2), 5, np.uint32))
    assert store.max_label() == 5  # the store's own write
    labels.paint((20, 20), 9)  # the user paints a new label by hand
    assert store.max_label() == 9
    labels.undo()  # napari's own undo (no paint event)
    labels.data[0, 10] = 12  # and a script that writes and refreshes the layer
    labels.refresh()
    assert store.max_label() == 12
    labels.data = np.full((30, 40), 30, np.uint32)  # new data
    assert store.max_label() == 30
