"""The annotation editor's rules, without napari or Qt (StubNet, in-memory labels)."""

from __future__ import annotations

import numpy as np
import pytest

from _annotation_helpers import SETTINGS, DeferredExecutor, Recorder, dark_image, make_editor
from napari_fcfi.annotation.events import (
    ClicksChanged,
    Error,
    Idle,
    LabelsChanged,
    ObjectChanged,
    Progress,
    Status,
)
from napari_fcfi.annotation.planes import compose_object
from napari_fcfi.annotation.predictors import INJECTED, PredictorCache, PredictorSettings
from napari_fcfi.annotation.store import ArrayLabelStore, LabelStore
from stubnet import SoftStub, StubNet


def steps(store: ArrayLabelStore) -> int:
    return len(store._undo)


# ---------------------------------------------------------------------------- clicks
def test_positive_click_writes_one_undo_step():
    editor, store = make_editor(dark_image((64, 80)))
    events = Recorder(editor)
    editor.click((), 30, 40)
    obj = store.data == 1
    assert editor.object_id == 1 and obj[30, 40] and 40 < obj.sum() < 200
    assert set(np.unique(store.data)) == {0, 1}
    assert steps(store) == 1
    kinds = [type(e) for e in events.events]
    assert kinds[0] is ObjectChanged and LabelsChanged in kinds and kinds[-1] is Idle
    assert editor.clicks() == [((), 30, 40, True)]
    store.undo()
    assert not store.data.any()


def test_negative_click_removes_pixels_of_an_existing_label():
    labels = np.zeros((64, 80), np.uint16)
    labels[10:50, 10:70] = 5
    editor, store = make_editor(dark_image((64, 80)), labels)
    editor.click((), 30, 20)
    assert editor.object_id == 5
    before = (store.data == 5).sum()
    editor.click((), 30, 55, False)
    obj = store.data == 5
    assert not obj[30, 55] and obj[30, 20] and obj[15, 40]
    assert before - 120 < obj.sum() < before - 40


def test_hand_edits_are_the_feedback_of_the_next_click():
    editor, store = make_editor(dark_image((64, 80)))
    editor.click((), 30, 40)
    painted = store.read_plane(())
    painted[10:20, 60:70] = 1  # the user paints with the object's id
    store.write_plane((), painted)
    editor.click((), 50, 20)
    obj = store.data == 1
    assert obj[10:20, 60:70].all() and obj[50, 20] and obj[30, 40]
    erased = store.read_plane(())
    erased[10:15, 60:70] = 0  # and erases half of it again
    store.write_plane((), erased)
    editor.click((), 50, 60)
    obj = store.data == 1
    assert not obj[10:15, 60:70].any() and obj[15:20, 60:70].all() and obj[50, 60]


def test_undo_redo_are_exact():
    editor, store = make_editor(dark_image((64, 80)))
    editor.click((), 30, 40)
    one = store.data.copy()
    editor.click((), 30, 50)
    two = store.data.copy()
    editor.undo(())
    np.testing.assert_array_equal(store.data, one)
    assert len(editor.clicks()) == 1
    editor.redo(())
    np.testing.assert_array_equal(store.data, two)
    editor.redo(())
    np.testing.assert_array_equal(store.data, two)


def test_finish_protects_the_old_object_and_undo_gives_overwritten_pixels_back():
    editor, store = make_editor(dark_image((64, 80)))
    events = Recorder(editor)
    editor.click((), 30, 40)
    first = store.data == 1
    editor.finish()
    assert editor.object_id is None and editor.clicks() == []
    assert ObjectChanged(None, 2) in events.events
    editor.click((), 30, 46)
    assert editor.object_id == 2
    np.testing.assert_array_equal(store.data == 1, first)
    editor.allow_overwrite = True
    editor.click((), 30, 45)
    assert (store.data == 1).sum() < first.sum()
    editor.undo(())
    np.testing.assert_array_equal(store.data == 1, first)  # exactly as it was
    editor.undo(())
    np.testing.assert_array_equal(store.data, first.astype(store.data.dtype))


def test_first_click_inside_a_label_continues_it_and_a_negative_one_outside_is_refused():
    labels = np.zeros((64, 80), np.uint16)
    labels[20:40, 20:40] = 7
    editor, store = make_editor(dark_image((64, 80)), labels)
    events = Recorder(editor)
    editor.click((), 30, 30)
    assert editor.object_id == 7 and (store.data == 7)[20:40, 20:40].all()
    editor.finish()
    editor.click((), 25, 36, False)
    assert editor.object_id == 7
    assert store.data[25, 36] == 0 and store.data[30, 22] == 7
    editor.finish()
    events.clear()
    editor.click((), 55, 70, False)
    assert editor.object_id is None and events.of(Error)
    assert store.data.max() == 7


def test_reset_restores_every_plane_in_one_step():
    labels = np.zeros((3, 64, 80), np.uint16)
    labels[:, 20:40, 20:40] = 3
    editor, store = make_editor(dark_image((3, 64, 80)), labels.copy())
    editor.allow_overwrite = True
    editor.click((0,), 30, 60)
    editor.click((0,), 30, 38)  # takes pixels of object 3
    editor.click((2,), 30, 60)
    assert (store.data == 4).any() and (store.data[0] == 3).sum() < 400
    n = steps(store)
    editor.reset()
    np.testing.assert_array_equal(store.data, labels)
    assert steps(store) == n + 1 and editor.object_id == 4 and editor.clicks() == []
    store.undo()
    assert (store.data == 4).any()


def test_reset_gives_an_existing_label_back_its_removed_pixels():
    labels = np.zeros((64, 80), np.uint16)
    labels[10:50, 10:70] = 5
    editor, store = make_editor(dark_image((64, 80)), labels.copy())
    editor.click((), 30, 20)
    editor.click((), 30, 55, False)
    assert not (store.data == 5)[30, 55]
    editor.reset()
    np.testing.assert_array_equal(store.data, labels)


def test_a_click_touches_only_its_plane_and_undo_is_per_plane():
    editor, store = make_editor(dark_image((5, 48, 48)))
    events = Recorder(editor)
    editor.click((3,), 24, 20)
    assert store.data[3, 24, 20] == 1 and not np.delete(store.data, 3, axis=0).any()
    editor.undo((0,))
    assert store.data[3, 24, 20] == 1
    assert Status("nothing to undo on this slice") in events.events
    editor.undo((3,))
    assert not store.data.any()


def test_four_d_keys():
    editor, store = make_editor(dark_image((3, 4, 32, 32)))
    editor.click((1, 2), 16, 16)
    assert store.data[1, 2, 16, 16] == 1
    assert (store.data != 0).sum() == (store.data[1, 2] != 0).sum()
    editor.propagate((1, 2))
    assert all(store.data[1, z, 16, 16] == 1 for z in range(4))
    assert not store.data[0].any() and not store.data[2].any()


def test_click_outside_the_image_is_an_error():
    editor, store = make_editor(dark_image((20, 20)))
    events = Recorder(editor)
    editor.click((), 25, 3)
    assert events.of(Error) and editor.object_id is None and not store.data.any()


# ---------------------------------------------------------------------- propagation
def test_propagation_stops_at_a_stop_marker_and_is_one_undo_step():
    editor, store = make_editor(dark_image((7, 48, 48)))
    events = Recorder(editor)
    editor.click((3,), 24, 24)
    editor.click((6,), 24, 24, False)  # the object is absent there: a stop marker
    assert ((6,), 24, 24, False) in editor.clicks()
    n = steps(store)
    editor.propagate((3,))
    assert all(store.data[z, 24, 24] == 1 for z in range(6)) and not store.data[6].any()
    assert steps(store) == n + 1
    status = [e.message for e in events.of(Status)][-1]
    assert "to 5 slices" in status and "up: stop click at slice 6" in status
    progress = events.of(Progress)
    assert progress[0].running and not progress[-1].running and progress[-1].done >= 5
    after = store.data.copy()
    editor.undo((3,))
    assert [bool(store.data[z].any()) for z in range(7)] == [0, 0, 0, 1, 0, 0, 0]
    editor.redo((3,))
    np.testing.assert_array_equal(store.data, after)
    store.undo()
    assert [bool(store.data[z].any()) for z in range(7)] == [0, 0, 0, 1, 0, 0, 0]


def test_propagation_undo_leaves_later_hand_edits_alone():
    editor, store = make_editor(dark_image((5, 32, 32)))
    editor.click((2,), 16, 16)
    editor.propagate((2,))
    plane = store.read_plane((4,))
    plane[0:4, 20:30] = 9  # a hand edit after the propagation
    store.write_plane((4,), plane)
    editor.undo((2,))
    assert (store.data[4, 0:4, 20:30] == 9).all() and not (store.data[4] == 1).any()


def test_cancel_keeps_the_slices_done_so_far():
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((40, 32, 32)), executor=executor)
    editor.click((0,), 16, 16)
    executor.run_all()

    def cancel_after_three(event):
        if isinstance(event, Progress) and event.running and event.done == 3:
            assert editor.cancel_propagation()

    editor.events.connect(cancel_after_three)
    events = Recorder(editor)
    editor.propagate((0,))
    executor.run_all()
    done = [z for z in range(40) if store.data[z].any()]
    assert done == [0, 1, 2, 3]
    assert "cancelled" in [e.message for e in events.of(Status)][-1]
    editor.undo((0,))
    assert [z for z in range(40) if store.data[z].any()] == [0]


def test_propagation_needs_a_stack_and_an_object():
    editor, _ = make_editor(dark_image((32, 32)))
    events = Recorder(editor)
    editor.propagate(())
    editor2, _ = make_editor(dark_image((3, 32, 32)))
    events2 = Recorder(editor2)
    editor2.propagate((1,))
    editor2.click((0,), 16, 16)
    editor2.propagate((1,))
    assert "stack" in events.of(Error)[0].message
    messages = [e.message for e in events2.of(Error)]
    assert "segment an object first" in messages[0] and "empty on this slice" in messages[1]


# ------------------------------------------------------------------ target changes
def test_detaching_mid_inference_drops_the_result():
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((32, 32)), executor=executor)
    editor.click((), 16, 16)
    editor.click((), 16, 20)
    editor.detach()
    assert not editor.busy and editor.object_id is None
    executor.run_all()
    assert not store.data.any()
    other = ArrayLabelStore(np.zeros((32, 32), np.uint32))
    image = dark_image((32, 32))
    editor.attach(other, lambda key: image[key], image.shape)
    editor.click((), 10, 10)
    executor.run_all()
    assert other.data[10, 10] == 1 and not store.data.any()


def test_detaching_mid_propagation_takes_the_preview_back():
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((6, 32, 32)), executor=executor)
    editor.click((0,), 16, 16)
    executor.run_all()
    before = store.data.copy()

    def detach_after_two(event):
        if isinstance(event, Progress) and event.running and event.done == 2:
            editor.detach()

    editor.events.connect(detach_after_two)
    editor.propagate((0,))
    executor.run_all()
    np.testing.assert_array_equal(store.data, before)


# ------------------------------------------------------------------ settings
def test_threshold_redraws_and_settings_restart_histories():
    editor, store = make_editor(dark_image((64, 80)), model=SoftStub())
    editor.click((), 30, 40)
    area = (store.data == 1).sum()
    assert 40 < area < 200
    editor.set_threshold(0.2, ())
    assert (store.data == 1).sum() > 10 * area and editor.threshold == 0.2
    editor.set_threshold(0.49, ())
    assert (store.data == 1).sum() == area
    flipped = PredictorSettings(source=INJECTED, device="cpu", zoom_in=False, flip=True)
    editor.configure(flipped)
    assert editor.clicks() == [] and editor.settings == flipped
    editor.click((), 30, 55)
    obj = store.data == 1
    assert obj[30, 40] and obj[30, 55]


def test_an_unusable_device_is_reported_and_the_editor_stays_usable():
    import torch

    # a device this machine lacks: CUDA, or MPS where CUDA is present (never both on one)
    device = "mps" if torch.cuda.is_available() else "cuda"
    editor, store = make_editor(dark_image((32, 32)))
    events = Recorder(editor)
    editor.configure(PredictorSettings(source=INJECTED, device=device, zoom_in=False))
    editor.click((), 16, 16)
    assert device.upper() in events.of(Error)[0].message and not store.data.any()
    assert ClicksChanged() in events.events
    editor.configure(SETTINGS)
    editor.click((), 16, 16)
    assert store.data[16, 16] == 1


def test_predictor_cache_is_keyed_by_the_settings():
    built = []

    def factory(model, **kwargs):
        from napari_fcfi.inference.predictor import Predictor

        built.append(kwargs)
        return Predictor(model, **kwargs)

    loaded = []

    def load(source, device):
        loaded.append((source, device))
        return StubNet()

    cache = PredictorCache(model=StubNet(), predictor_factory=factory, load_model=load)
    a = cache.get(SETTINGS, 0.4)
    assert cache.get(SETTINGS, 0.6) is a and a.threshold == 0.6 and len(built) == 1
    assert built[0]["first_click"] is None  # fit: the model's own first-click mode
    no_fit = PredictorSettings(source=INJECTED, device="cpu", zoom_in=False, flip=False, fit=False)
    b = cache.get(no_fit, 0.5)
    assert b is not a and built[-1]["first_click"] == "window" and not loaded
    cache.get(PredictorSettings(source="model.pth", device="cpu"), 0.5)
    assert loaded == [("model.pth", "cpu")] and built[-1]["zoom_in"] is True
    with pytest.raises(ValueError, match="Browse"):
        cache.get(PredictorSettings(source=""), 0.5)
    with pytest.raises(ValueError, match="device"):
        PredictorSettings(device="tpu")


# ------------------------------------------------------------------ stores and planes
def test_array_store_groups_undo_and_redo():
    store = ArrayLabelStore(np.zeros((2, 4, 4), np.uint8))
    assert isinstance(store, LabelStore)
    with store.group():
        store.write_plane((0,), np.ones((4, 4), np.uint8))
        with store.group():
            store.write_plane((1,), np.full((4, 4), 2, np.uint8))
        store.write_plane((0,), np.full((4, 4), 3, np.uint8))
    store.write_plane((1,), store.read_plane((1,)))  # unchanged: no step
    assert steps(store) == 1 and store.max_label() == 3
    store.preview_plane((1,), np.zeros((4, 4), np.uint8))
    assert steps(store) == 1
    store.preview_plane((1,), np.full((4, 4), 2, np.uint8))
    store.undo()
    assert not store.data.any() and not store.can_undo
    store.redo()
    assert (store.data[0] == 3).all() and (store.data[1] == 2).all()
    with pytest.raises(ValueError):
        ArrayLabelStore(np.zeros((4, 4), np.float32))


def test_compose_object_gives_taken_pixels_back():
    before = np.zeros((4, 4), np.uint16)
    before[0:2] = 2
    plane = before.copy()
    plane[1:3] = 5  # object 5 took row 1 from object 2
    mask = np.zeros((4, 4), bool)
    mask[2] = True
    new = compose_object(plane, mask, 5, allow_overwrite=False, before=before)
    assert (new[0:2] == 2).all() and (new[2] == 5).all()
    assert (compose_object(plane, mask, 5, False)[1] == 0).all()
    continued = np.full((4, 4), 5, np.uint16)
    assert not compose_object(continued, mask, 5, False, before=continued)[0].any()


def test_propagated_slices_start_from_a_prior_and_clicks_from_labels_do_not(monkeypatch):
    """Propagation hands each slice its neighbour's mask as a prior (the answer is read at
    the first-click threshold); a click on an existing label stays a correction."""
    import napari_fcfi.inference.session as session_module

    made = []

    class Recording(session_module.InteractiveSession):
        def __init__(self, predictor, image, feedback=None, *, prior=False):
            made.append((feedback is not None, prior))
            super().__init__(predictor, image, feedback=feedback, prior=prior)

    monkeypatch.setattr(session_module, "InteractiveSession", Recording)
    editor, store = make_editor(dark_image((5, 48, 48)))
    editor.click((2,), 24, 24)
    assert made == [(False, False)]
    editor.propagate((2,))
    assert store.data[0, 24, 24] == 1 and store.data[4, 24, 24] == 1
    assert made[1:] and all(m == (True, True) for m in made[1:])
    made.clear()
    editor.finish()
    editor.click((4,), 24, 24)  # on the propagated label: a correction, not a prior
    assert made == [(True, False)]
