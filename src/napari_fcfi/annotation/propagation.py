"""Carrying the object through a stack, as one undoable step.

The network work is :func:`napari_fcfi.stack.propagate.iter_propagate`, run in the
background by :func:`propagation_work`. :class:`PropagationRun` shows each accepted slice
as it arrives (a preview, not yet in the undo history) and, when the run ends, finishes or
is cancelled, records all of them as one undo step. :func:`apply_record` undoes or redoes
that step pixel by pixel: only pixels that still hold what the propagation left (or what
was there before it) change, so later hand edits survive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..stack.propagate import PropagationStep, iter_propagate
from .objects import PropagationRecord
from .planes import SliceKey, compose_object, replace_where_unchanged
from .store import LabelStore

DONE = "done"
CANCELLED = "cancelled"
FAILED = "failed"


def propagation_work(
    get_predictor: Callable,
    new_session: Callable,
    read_image: Callable[[SliceKey], np.ndarray],
    key: SliceKey,
    mask: np.ndarray,
    n_slices: int,
    iou_threshold: float,
    stop_slices: set[int],
    cancel: threading.Event,
) -> Callable:
    """The background work of a propagation from plane ``key``: a generator function that
    yields :class:`~napari_fcfi.stack.propagate.PropagationStep` objects and returns
    :data:`DONE`, or :data:`CANCELLED` when ``cancel`` is set between two slices."""
    prefix = tuple(key[:-1])

    def work():
        predictor = get_predictor()
        steps = iter_propagate(
            lambda image, feedback: new_session(predictor, image, feedback, prior=True),
            lambda i: read_image(prefix + (i,)),
            key[-1],
            mask,
            n_slices,
            iou_threshold=iou_threshold,
            stop_slices=stop_slices,
        )
        for step in steps:
            yield step
            if cancel.is_set():
                return CANCELLED
        return DONE

    return work


REASON_WORDS = {"vanished": "object vanished", "iou": "IoU drop", "stop": "stop click"}


class PropagationRun:
    """The slices a running propagation from plane ``prefix + (start,)`` has produced for
    ``object_id`` on the planes ``prefix + (index,)`` of a stack of ``n_slices``."""

    def __init__(
        self,
        store: LabelStore,
        object_id: int,
        prefix: SliceKey,
        overwrite: bool,
        start: int,
        n_slices: int,
    ):
        self.store = store
        self.object_id = object_id
        self.prefix = tuple(prefix)
        self.overwrite = overwrite
        self.start = int(start)
        self.n_slices = int(n_slices)
        self.before: dict[SliceKey, np.ndarray] = {}
        self.after: dict[SliceKey, np.ndarray] = {}
        #: why each direction (+1 up, -1 down) ended: (slice, reason) once known
        self.ended: dict[int, tuple[int, str]] = {}
        self.done = 0
        self.total = 0

    def show(self, step: PropagationStep) -> None:
        """Preview one slice (or note why the run stopped in that direction)."""
        self.done, self.total = step.done, step.total
        if step.mask is None:
            self.ended[step.direction] = (step.index, step.stopped)
            return
        if step.index in (0, self.n_slices - 1):
            self.ended[step.direction] = (step.index, "end")
        key = self.prefix + (step.index,)
        plane = self.store.read_plane(key)
        new = compose_object(plane, step.mask, self.object_id, self.overwrite)
        self.before.setdefault(key, plane)
        self.after[key] = new
        self.store.preview_plane(key, new)

    def commit(self) -> dict[SliceKey, np.ndarray]:
        """Record the previewed slices as one undo step; returns the planes written (the
        previews with any hand edit made meanwhile)."""
        final = {}
        for key in self.after:
            final[key] = self.store.read_plane(key)
            self.store.preview_plane(key, self.before[key])
        with self.store.group():
            for key, plane in final.items():
                self.store.write_plane(key, plane)
        return final

    def discard(self) -> None:
        """Take the previews back (the run's labels are gone)."""
        for key, plane in self.before.items():
            self.store.preview_plane(key, plane)

    def describe(self, outcome: str, written: int) -> str:
        """A status line saying how far the object was carried and, for each direction, why
        it ended: object vanished, IoU drop or stop click (at which slice), end of stack,
        cancelled or failed."""
        parts = [
            f"{word}: {self._why(d, outcome)}"
            for d, word in ((1, "up"), (-1, "down"))
            # a start on the first or last slice has nothing to visit on that side
            if not (self.start == self.n_slices - 1 and d > 0) and not (self.start == 0 and d < 0)
        ]
        why = "; ".join(parts) if parts else "a single slice"
        return f"propagated object {self.object_id} to {written} slices ({why})"

    def _why(self, direction: int, outcome: str) -> str:
        if direction in self.ended:
            index, reason = self.ended[direction]
            if reason == "end":
                return "end of stack"
            return f"{REASON_WORDS.get(reason, reason)} at slice {index}"
        if outcome in (CANCELLED, FAILED):
            return outcome
        return "end of stack"


def apply_record(store: LabelStore, record: PropagationRecord, undo: bool) -> list[SliceKey]:
    """Undo (``undo=True``) or redo a propagation as one undo step of ``store``; returns
    the planes it touched."""
    src, dst = (record.after, record.before) if undo else (record.before, record.after)
    with store.group():
        for key, target in dst.items():
            store.write_plane(key, replace_where_unchanged(store.read_plane(key), src[key], target))
    record.undone = undo
    return list(dst)
