"""Propagation stops where the object ends: image evidence, reasons, and the 3-D sample."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fcfi.annotation.propagation import CANCELLED, DONE, PropagationRun
from napari_fcfi.annotation.store import ArrayLabelStore
from napari_fcfi.stack.evidence import Evidence
from napari_fcfi.stack.propagate import PropagationStep, iter_propagate


def disk(r, shape=(48, 48), c=(24, 24)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r


class Ghost:
    """A network that always returns its feedback: the ghost-drawing failure mode."""

    def __init__(self, image, feedback=None):
        self.mask = None
        self.feedback = feedback

    def add_click(self, y, x, positive):
        self.mask = np.asarray(self.feedback) > 0.5
        return self.feedback


def fading_stack(n=9, bright=(2, 6)):
    """A bright disk on slices ``bright[0]..bright[1]``, a faint blur beyond."""
    stack = np.full((n, 48, 48), 20.0)
    for z in range(n):
        inside = bright[0] <= z <= bright[1]
        stack[z][disk(10)] += 200.0 if inside else 8.0
    return stack


def test_evidence_ends_a_fading_object_where_the_ghost_network_would_go_on():
    stack = fading_stack()
    steps = list(iter_propagate(Ghost, lambda i: stack[i], 4, disk(10), len(stack)))
    accepted = sorted(s.index for s in steps if s.mask is not None)
    assert accepted == [2, 3, 5, 6]
    assert {(s.index, s.stopped) for s in steps if s.stopped} == {(7, "vanished"), (1, "vanished")}
    # without the rule the ghost fills the stack
    steps = list(iter_propagate(Ghost, lambda i: stack[i], 4, disk(10), len(stack), evidence=False))
    assert sorted(s.index for s in steps if s.mask is not None) == [0, 1, 2, 3, 5, 6, 7, 8]


def test_evidence_modes():
    stack = fading_stack()
    rule = Evidence(lambda i: stack[i], len(stack), 4, disk(10))
    assert rule.mode == "foreground" and rule.polarity == 1
    assert rule.present(rule.measure(stack[3], disk(10)))
    assert not rule.present(rule.measure(stack[8], disk(10)))
    dark = 255 - stack  # dark objects on a bright ground
    rule = Evidence(lambda i: dark[i], len(dark), 4, disk(10))
    assert rule.mode == "foreground" and rule.polarity == -1
    assert not rule.present(rule.measure(dark[8], disk(10)))
    flat = np.zeros((3, 48, 48))
    rule = Evidence(lambda i: flat[i], 3, 1, disk(10))
    assert rule.mode == "off" and rule.present(rule.measure(flat[0], disk(10)))


def test_the_status_gives_each_direction_its_true_reason():
    store = ArrayLabelStore(np.zeros((10, 8, 8), np.uint32))
    run = PropagationRun(store, 1, (), False, 4, 10)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    for i in (5, 6):
        run.show(PropagationStep(i, 1, mask, (3, 3), 0.9, None, i - 4, 9))
    run.show(PropagationStep(7, 1, None, (3, 3), 0.9, "vanished", 3, 9))
    for i in (3, 2, 1, 0):
        run.show(PropagationStep(i, -1, mask, (3, 3), 0.9, None, 7 - i, 9))
    text = run.describe(DONE, 6)
    assert "up: object vanished at slice 7" in text and "down: end of stack" in text
    run = PropagationRun(store, 1, (), False, 4, 10)
    run.show(PropagationStep(5, 1, None, (3, 3), 0.2, "iou", 1, 9))
    run.show(PropagationStep(3, -1, mask, (3, 3), 0.9, None, 2, 9))
    text = run.describe(CANCELLED, 1)
    assert "up: IoU drop at slice 5" in text and "down: cancelled" in text
    run = PropagationRun(store, 1, (), False, 4, 10)
    run.show(PropagationStep(5, 1, None, None, 0.0, "stop", 1, 9))
    assert "up: stop click at slice 5" in run.describe(DONE, 0)


def test_the_3d_sample_nuclei_end_within_one_slice_of_their_reference_without_ghosts():
    """The built-in model on the nuclei3d sample against its reference nuclei (the
    bench_propagation.py figure)."""
    import torch

    from napari_fcfi._sample_data import load_sample, reference_labels
    from napari_fcfi.evaluation.propagation import evaluate_propagation, summarize
    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    torch.set_num_threads(1)
    stack = np.asarray(load_sample("nuclei3d")[0][0])
    labels = reference_labels("nuclei3d")
    assert labels.shape == stack.shape
    predictor = Predictor(load_model(device="cpu"), device="cpu")
    summary = summarize(evaluate_propagation(predictor, stack, labels))
    assert summary["objects"] >= 19
    assert summary["within_tolerance"] >= 0.9, summary
    assert summary["ghost_slices"] == 0, summary


@pytest.mark.parametrize("name", ["nuclei2d"])
def test_only_the_3d_sample_has_reference_labels(name):
    from napari_fcfi._sample_data import reference_labels

    with pytest.raises(ValueError, match="no reference labels"):
        reference_labels(name)
