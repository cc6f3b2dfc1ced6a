"""Ordering is a rule of the editor: any sequence of commands, given at any speed, gives the
same labels as the same sequence given slowly.

"Slowly" waits for the network after every command. "At once" gives every command before
the network answers even the first click. "Jittered" lets the network answer after a
random number of commands. The three must leave identical labels, the same current object
and clicks, the same reports, and an undo history that takes the labels back exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from _annotation_helpers import DeferredExecutor, Recorder, dark_image, make_editor
from napari_fcfi.annotation.events import Idle
from napari_fcfi.annotation.predictors import PredictorSettings

SHAPE = (4, 32, 32)
KINDS = (
    "click",
    "negative",
    "finish",
    "undo",
    "redo",
    "reset",
    "propagate",
    "threshold",
    "configure",
    "overwrite",
)
WEIGHTS = np.array([30, 8, 10, 9, 6, 3, 5, 2, 2, 3], dtype=float)


def start_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint32)
    labels[1, 4:12, 18:28] = 7  # an existing object to continue, protect or overwrite
    return labels


def random_script(rng: np.random.Generator, n: int) -> list[tuple]:
    script = []
    for _ in range(n):
        kind = KINDS[rng.choice(len(KINDS), p=WEIGHTS / WEIGHTS.sum())]
        key = (int(rng.integers(0, SHAPE[0])),)
        y, x = (int(v) for v in rng.integers(0, SHAPE[1:]))
        if kind in ("click", "negative"):
            script.append(("click", key, y, x, kind == "click"))
        elif kind == "threshold":
            script.append((kind, key, float(rng.choice([0.3, 0.49, 0.7]))))
        elif kind == "configure":
            script.append((kind, bool(rng.integers(0, 2))))
        elif kind in ("undo", "redo", "propagate"):
            script.append((kind, key))
        else:
            script.append((kind,))
    return script


def give(editor, action) -> None:
    kind, args = action[0], action[1:]
    if kind == "click":
        editor.click(*args)
    elif kind == "threshold":
        key, value = args
        editor.set_threshold(value, key)
    elif kind == "configure":
        (flip,) = args
        editor.configure(
            PredictorSettings(source="injected", device="cpu", zoom_in=False, flip=flip)
        )
    elif kind == "overwrite":
        editor.allow_overwrite = not editor.allow_overwrite
    elif kind == "propagate":
        editor.propagate(args[0], iou_threshold=0.3)
    else:
        getattr(editor, kind)(*args)


def play(script, pace: str, seed: int = 0):
    """Give ``script`` to a fresh editor; ``pace`` is "slow", "at once" or "jittered"."""
    executor = DeferredExecutor()
    image = dark_image(SHAPE)
    editor, store = make_editor(image, start_labels(), executor=executor)
    events = Recorder(editor)
    rng = np.random.default_rng(seed)
    for action in script:
        give(editor, action)
        if pace == "slow":
            executor.run_all()
            assert not editor.busy
        elif pace == "jittered":
            executor.run(int(rng.integers(0, 3)))
    executor.run_all()
    assert not editor.busy
    reports = [e for e in events.events if not isinstance(e, Idle)]
    return editor, store, reports


def undo_all(store) -> np.ndarray:
    while store.undo():
        pass
    return store.data


@pytest.mark.parametrize("seed", range(16))
def test_any_pace_gives_the_labels_of_the_slow_pace(seed):
    rng = np.random.default_rng(seed)
    script = random_script(rng, 28)
    slow, slow_store, slow_reports = play(script, "slow")
    for pace in ("at once", "jittered"):
        editor, store, reports = play(script, pace, seed=seed)
        np.testing.assert_array_equal(store.data, slow_store.data, err_msg=f"{pace}: {script}")
        assert editor.object_id == slow.object_id, pace
        assert editor.clicks() == slow.clicks(), pace
        assert reports == slow_reports, pace
        np.testing.assert_array_equal(undo_all(store), start_labels())
    np.testing.assert_array_equal(undo_all(slow_store), start_labels())


def test_the_scripts_exercise_every_command():
    """The random scripts are not trivial: objects are made, finished and propagated."""
    made, finished, propagated = 0, 0, 0
    for seed in range(16):
        script = random_script(np.random.default_rng(seed), 28)
        editor, store, reports = play(script, "slow")
        made += len(set(np.unique(store.data).tolist()) - {0, 7})
        finished += sum(a[0] == "finish" for a in script)
        propagated += sum("propagated object" in getattr(e, "message", "") for e in reports)
    assert made >= 16 and finished >= 16 and propagated >= 3


def test_finish_between_fast_clicks_keeps_both_objects():
    """Click, finish at once, click again: two objects, before any network answer."""
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((40, 48)), executor=executor)
    editor.click((), 12, 12)
    editor.finish()
    editor.click((), 28, 34)
    assert executor.ran == 0 and editor.busy
    executor.run_all()
    assert store.data[12, 12] == 1 and store.data[28, 34] == 2
    assert editor.object_id == 2
    assert [(y, x) for _, y, x, _ in editor.clicks()] == [(28, 34)]


def test_click_right_after_finish_on_an_idle_editor_starts_a_new_object():
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((40, 48)), executor=executor)
    editor.click((), 12, 12)
    executor.run_all()
    editor.finish()
    editor.click((), 28, 34)
    executor.run_all()
    assert store.data[12, 12] == 1 and store.data[28, 34] == 2


def test_many_fast_clicks_of_one_object_are_applied_in_order():
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((40, 64)), executor=executor)
    for x in (10, 22, 34):
        editor.click((), 20, x)
    editor.undo(())  # takes back the click at x=34, whose result has not arrived yet
    editor.click((), 20, 46)
    executor.run_all()
    obj = store.data == 1
    assert obj[20, 10] and obj[20, 22] and obj[20, 46] and not obj[20, 34]
    assert [x for _, _, x, _ in editor.clicks()] == [10, 22, 46]


def test_a_failed_click_does_not_block_the_commands_after_it():
    executor = DeferredExecutor()
    editor, store = make_editor(dark_image((40, 48)), executor=executor)
    broken = PredictorSettings(source="", device="cpu", zoom_in=False, flip=False)
    editor.configure(broken)
    editor.click((), 12, 12)  # no checkpoint chosen: fails
    editor.configure(PredictorSettings(source="injected", device="cpu", zoom_in=False, flip=False))
    editor.click((), 12, 12)
    executor.run_all()
    assert store.data[12, 12] == 1
