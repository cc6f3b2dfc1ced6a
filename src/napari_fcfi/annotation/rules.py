"""The editing rules: what each command does to the editor's state and to the labels.

:class:`Rules` applies one command at a time against an
:class:`~napari_fcfi.annotation.objects.EditorState`; it is called only once every earlier
command has been applied (see :mod:`.sequencer`), so everything a command decides (the
object a click belongs to, the feedback read back from the labels, what undo acts on) is
decided against the labels and state that the earlier commands left.

* **Click.** The first click of an object starts it: inside an existing label it continues
  that label, on the background (positive only) it takes a fresh id. The object's pixels
  on the plane are read back before every click; when they differ from what the editor
  wrote last (a hand edit), they become the network's feedback. A negative click on a
  plane where the object is absent marks where a propagation must stop.
* **Finish.** The next click starts a new object.
* **Undo / redo.** The object's last propagation as a whole, else its last click on the
  plane. A pixel the object took from another object (with overwriting allowed) is given
  back when the object lets it go, so an undo restores the other object exactly.
* **Reset.** The object's pixels on every plane go back to what they were before the
  object was started (one undo step); its clicks are forgotten; it stays current.
* **Threshold, predictor settings.** The threshold redraws the object on the given
  plane; new settings restart the click histories from the object's current pixels.
* **Propagate.** See :mod:`.propagation`.

**Where a command looks.** On images of ordinary size, the whole plane, as described
above; on very large planes, the rectangle around the object (see :mod:`.regions`). A hand
edit is read back when it lies in that rectangle; pixels painted with the object's id far
away from it are left as they are by the object's clicks, undo and reset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from . import commands as cmd
from . import regions
from .events import ClicksChanged, Error, Events, LabelsChanged, ObjectChanged, Progress, Status
from .executor import Job
from .objects import EditorState, ObjectState, PropagationRecord, SliceState
from .planes import (
    Rect,
    SliceKey,
    compose_object,
    full_rect,
    mask_rect,
    rect_of_slices,
    reframe,
    restore_object,
)
from .predictors import PredictorCache, set_thresholds
from .propagation import FAILED, PropagationRun, apply_record, propagation_work
from .sequencer import Sequencer


class Rules:
    """Applies commands to ``state``; network work goes through ``sequencer``."""

    def __init__(
        self,
        state: EditorState,
        events: Events,
        sequencer: Sequencer,
        predictors: PredictorCache,
        session_factory: Callable | None = None,
    ):
        self.state = state
        self.events = events
        self.sequencer = sequencer
        self.predictors = predictors
        self._session_factory = session_factory

    def apply(self, command) -> None:
        handler = {
            cmd.Click: self.click,
            cmd.Finish: self.finish,
            cmd.Undo: lambda c: self.step(c.key, c.overwrite, undo=True),
            cmd.Redo: lambda c: self.step(c.key, c.overwrite, undo=False),
            cmd.Reset: self.reset,
            cmd.Propagate: self.propagate,
            cmd.SetThreshold: self.set_threshold,
            cmd.Configure: self.configure,
        }[type(command)]
        handler(command)

    # ------------------------------------------------------------------ helpers
    def _emit(self, *events) -> None:
        for event in events:
            self.events.emit(event)

    def _report_failure(self, exc: BaseException) -> None:
        self._emit(Error(f"{type(exc).__name__}: {exc}"), ClicksChanged())

    def new_session(self, predictor, image, feedback, prior: bool = False):
        """A click history on ``image`` starting from ``feedback`` (a mask, a
        :class:`~napari_fcfi.inference.maps.RoiMap` or ``None``). ``prior``: the feedback
        is a neighbouring plane's mask (propagation), so the first answer is read at the
        first-click threshold (a custom ``session_factory`` is called as before)."""
        from ..inference.maps import RoiMap

        fb = feedback
        if fb is not None and not isinstance(fb, RoiMap):
            fb = np.asarray(fb, dtype=np.float32)
        factory = self._session_factory
        if factory is None:
            from ..inference.session import InteractiveSession

            return InteractiveSession(predictor, image, feedback=fb, prior=prior)
        return factory(predictor, image, feedback=fb)

    # ------------------------------------------------------------------ rectangles
    def _plane_shape(self) -> tuple[int, int]:
        return int(self.state.shape[-2]), int(self.state.shape[-1])

    def _write_mask(
        self, obj: ObjectState, key, state: SliceState, rect: Rect, mask, overwrite
    ) -> None:
        """Write the object's ``mask`` (covering ``rect``) on plane ``key`` (one undo step of
        the store); only the rectangle around the object is read and written."""
        store = self.state.require_store()
        grow_to = mask_rect(mask, (rect[0], rect[2]))
        labels = regions.look(store, key, state, grow_to if grow_to is not None else state.rect)
        mask = reframe(np.asarray(mask, dtype=bool), rect, state.rect, False)
        new = compose_object(labels, mask, obj.object_id, overwrite, before=state.before)
        store.write_region(key, state.rect, new)
        state.written = new == obj.object_id
        obj.propagation = None  # a newer edit: undo now means "undo the click"
        self._emit(LabelsChanged((key,)))

    def _whole_plane(self, key, state: SliceState, plane: np.ndarray) -> None:
        """Grow ``state`` to the whole plane; ``plane`` gives the new pixels' ``before``."""
        state.grow(full_rect(plane.shape), plane)

    # ------------------------------------------------------------------ clicks
    def click(self, c: cmd.Click) -> None:
        st = self.state
        store = st.require_store()
        shape = self._plane_shape()
        if not (0 <= c.y < shape[0] and 0 <= c.x < shape[1]):
            raise ValueError("click is outside the image")
        obj = st.object
        if obj is None:
            value = int(store.read_region(c.key, (c.y, c.y + 1, c.x, c.x + 1))[0, 0])
            if value == 0 and not c.positive:
                message = "start an object with a positive click (or click inside a label)"
                self._emit(Error(message), ClicksChanged())
                return
            obj = st.object = ObjectState(value if value != 0 else st.next_id())
            self._emit(ObjectChanged(obj.object_id, obj.object_id))
        state = obj.slices.get(c.key)
        if state is None:
            rect, labels = regions.start_rect(store, c.key, shape, obj.object_id, c.y, c.x)
            current = labels == obj.object_id
            if not c.positive and not current.any():
                obj.stops.append((c.key, c.y, c.x))
                self._emit(Status(f"stop marker on slice {c.key} for propagation"))
                self._emit(ClicksChanged())
                return
            state = obj.slices[c.key] = SliceState(rect, before=labels, written=current)
        else:
            near = regions.neighbourhood(shape, regions.extent(state), c.y, c.x)
            labels = regions.look(store, c.key, state, near)
            current = labels == obj.object_id
        feedback, previous = None, state.written
        if not np.array_equal(current, state.written):
            feedback = current  # a hand edit since the last write: the new feedback
            state.written = current
        start, rect = state.written, state.rect
        session, settings = state.session, st.settings
        thresholds = (st.threshold, st.correction_threshold)
        read_image, predictors = st.read_image, self.predictors

        def work():
            predictor = predictors.get(settings, *thresholds)
            s, fed = session, False
            if s is None:
                # a new history starts from the object's current pixels on this plane
                fb = regions.feedback_map(shape, rect, start) if start.any() else None
                s = self.new_session(predictor, read_image(c.key), fb)
            elif feedback is not None:
                s.set_feedback(regions.feedback_map(shape, rect, feedback))
                fed = True
            try:
                s.click(c.y, c.x, c.positive)
            except Exception:
                if fed:
                    s.undo()  # the history stays as it was
                raise
            slices, values = s.mask_roi
            return s, fed, rect_of_slices(*slices), np.array(values, dtype=bool, copy=True)

        def done(result) -> None:
            s, fed, mask_at, mask = result
            if s is not session:
                state.begin(s, start)
            elif fed:
                state.push(feedback)
            self._write_mask(obj, c.key, state, mask_at, mask, c.overwrite)
            state.push(state.written)
            self._emit(ClicksChanged())

        def failed(exc) -> None:
            state.written = previous  # a hand edit is read back again by the next click
            self._report_failure(exc)

        self.sequencer.start(Job(work, on_done=done, on_error=failed, name="click"))

    def finish(self, c: cmd.Finish) -> None:
        self.state.object = None
        self._emit(ObjectChanged(None, self.state.next_id()), ClicksChanged())
        self._emit(Status("object finished; the next click starts a new object"))

    def step(self, key: SliceKey, overwrite: bool, undo: bool) -> None:
        """Undo (or redo) the last propagation, else the last click on plane ``key``."""
        obj = self.state.object
        record = None if obj is None else obj.propagation
        if record is not None and record.undone != undo:
            self._apply_record(obj, record, undo)
            return
        state = None if obj is None else obj.slices.get(key)
        session = None if state is None else state.session
        if session is None or not (session.can_undo if undo else session.can_redo):
            self._emit(Status(f"nothing to {'undo' if undo else 'redo'} on this slice"))
            return
        session.undo() if undo else session.redo()
        self._write_mask(obj, key, state, *state.move(undo), overwrite)
        self._emit(ClicksChanged())

    def _apply_record(self, obj: ObjectState, record: PropagationRecord, undo: bool) -> None:
        store = self.state.require_store()
        keys = apply_record(store, record, undo)
        for key in keys:
            state = obj.slices.get(key)
            if state is not None:
                plane = store.read_plane(key)
                self._whole_plane(key, state, plane)
                state.written = plane == obj.object_id
        word = "undid" if undo else "redid"
        self._emit(LabelsChanged(tuple(keys)))
        self._emit(Status(f"{word} propagation over {len(keys)} slices"))

    def reset(self, c: cmd.Reset) -> None:
        obj = self.state.object
        if obj is None:
            self._emit(Status("no object to reset"))
            return
        store = self.state.require_store()
        with store.group():
            for key, state in obj.slices.items():
                labels = store.read_region(key, state.rect)
                restored = restore_object(labels, obj.object_id, state.before)
                store.write_region(key, state.rect, restored)
        keys = tuple(obj.slices)
        obj.slices.clear()
        obj.stops.clear()
        obj.propagation = None
        self._emit(LabelsChanged(keys), ClicksChanged())
        self._emit(Status(f"object {obj.object_id} reset"))

    # ------------------------------------------------------------------ settings
    def set_threshold(self, c: cmd.SetThreshold) -> None:
        self.state.threshold = c.threshold
        self.state.correction_threshold = c.correction_threshold
        self.predictors.set_threshold(c.threshold, c.correction_threshold)
        obj = self.state.object
        state = None if obj is None else obj.slices.get(c.key)
        if state is None or state.session is None or not state.session.clicks:
            return
        set_thresholds(state.session.predictor, c.threshold, c.correction_threshold)
        slices, values = state.session.mask_roi
        self._write_mask(obj, c.key, state, rect_of_slices(*slices), values, c.overwrite)
        state.masks[state.position] = (state.rect, state.written.copy())

    def configure(self, c: cmd.Configure) -> None:
        if c.settings == self.state.settings:
            return
        self.state.settings = c.settings
        if self.state.object is not None:
            # the histories hold the old predictor; the next click starts a new one per
            # plane from the object's pixels there
            for state in self.state.object.slices.values():
                state.drop_history()
        self._emit(ClicksChanged())

    # ------------------------------------------------------------------ propagation
    def propagate(self, c: cmd.Propagate) -> None:
        st = self.state
        store = st.require_store()
        if len(st.shape) < 3:
            raise ValueError("propagation needs a stack (an image with a Z or T axis)")
        obj = st.object
        if obj is None:
            raise ValueError("segment an object first, then propagate it")
        mask = store.read_plane(c.key) == obj.object_id
        if not mask.any():
            raise ValueError(f"object {obj.object_id} is empty on this slice; click it first")
        prefix = c.key[:-1]
        stops = {k[-1] for k, _, _ in obj.stops if k[:-1] == prefix}
        settings, predictors = st.settings, self.predictors
        thresholds = (st.threshold, st.correction_threshold)
        st.cancel = threading.Event()
        run = st.run = PropagationRun(
            store, obj.object_id, prefix, c.overwrite, c.key[-1], st.shape[-3]
        )
        work = propagation_work(
            lambda: predictors.get(settings, *thresholds),
            self.new_session,
            st.read_image,
            c.key,
            mask,
            st.shape[-3],
            c.iou_threshold,
            stops,
            st.cancel,
        )

        def step(item) -> None:
            run.show(item)
            self._emit(Progress(run.done, run.total, True))

        def failed(exc) -> None:
            self._end_propagation(obj, run, FAILED)
            self._emit(Error(f"{type(exc).__name__}: {exc}"))

        self._emit(Progress(0, 0, True))
        job = Job(work, on_yield=step, on_error=failed, name="propagate")
        job.on_done = lambda outcome: self._end_propagation(obj, run, outcome)
        self.sequencer.start(job)

    def _end_propagation(self, obj: ObjectState, run: PropagationRun, outcome) -> None:
        self.state.run = None
        final = run.commit()
        self._emit(Progress(run.done, run.total, False))
        if not final:
            self._emit(Status(run.describe(outcome, 0)))
            return
        for key, plane in final.items():
            written = plane == obj.object_id
            state = obj.slices.get(key)
            if state is None:
                before = run.before[key].copy()
                state = obj.slices[key] = SliceState(full_rect(plane.shape), before, written)
            else:  # the labels before the propagation are the new pixels' "before"
                self._whole_plane(key, state, run.before[key])
            state.written = written
            state.drop_history()  # the next click there starts from this mask
        obj.propagation = PropagationRecord(obj.object_id, run.before, final)
        self._emit(LabelsChanged(tuple(final)), ClicksChanged())
        self._emit(Status(run.describe(outcome, len(final))))
