"""Shared pieces of the annotation editor tests: a deferred executor and a small editor
driven by the analytic StubNet (no weights).

StubNet's logits are ``12*(prev-0.5) + 24*pos_disk - 24*neg_disk + 3*(gray-0.5)``: on a
dark image a positive click gives a disk of radius ~5 px, a negative click removes one and
the previous mask (the feedback) persists, so every label change is predictable.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from napari_fcfi.annotation.editor import AnnotationEditor
from napari_fcfi.annotation.executor import Job
from napari_fcfi.annotation.predictors import INJECTED, PredictorCache, PredictorSettings
from napari_fcfi.annotation.store import ArrayLabelStore

# the stub's disks stay in pixel units: no zoom-in, no flip averaging
SETTINGS = PredictorSettings(source=INJECTED, device="cpu", zoom_in=False, flip=False)


class DeferredExecutor:
    """Holds every job until the test runs it: "the network has not answered yet"."""

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.ran = 0

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def run_next(self) -> bool:
        if not self.jobs:
            return False
        self.jobs.popleft().run_here()
        self.ran += 1
        return True

    def run(self, n: int) -> None:
        for _ in range(n):
            if not self.run_next():
                return

    def run_all(self) -> None:
        while self.run_next():
            pass


class Recorder:
    """Collects the editor's events."""

    def __init__(self, editor: AnnotationEditor) -> None:
        self.events: list = []
        editor.events.connect(self.events.append)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def clear(self) -> None:
        self.events.clear()


def dark_image(shape) -> np.ndarray:
    """A dark image (a few bright pixels in a corner for the intensity range)."""
    img = np.zeros(shape, dtype=np.uint8)
    img[..., 1:3, 1:3] = 255
    return img


def make_editor(image, labels=None, executor=None, model=None, **kwargs):
    """An editor over ``image`` and an in-memory label store (zeros unless ``labels``)."""
    from stubnet import StubNet

    if labels is None:
        labels = np.zeros(image.shape, dtype=np.uint32)
    store = ArrayLabelStore(labels)
    editor = AnnotationEditor(
        executor=executor,
        predictors=PredictorCache(model=model if model is not None else StubNet()),
        settings=kwargs.pop("settings", SETTINGS),
        **kwargs,
    )
    editor.attach(store, lambda key: np.asarray(image[tuple(key)]), image.shape)
    return editor, store
