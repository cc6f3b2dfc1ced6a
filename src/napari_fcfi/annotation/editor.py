"""The annotation editor: commands in, label edits and events out.

Every public command (:meth:`AnnotationEditor.click`, :meth:`~AnnotationEditor.finish`,
:meth:`~AnnotationEditor.undo`, ...) is recorded at once and applied strictly in the order
given. A command is applied only after every earlier one, including the network work of an
earlier click, has been applied; what it means is decided then, against the editor's
state and the labels as they are at that point:

* which object a click belongs to: the current object, else the label under the click,
  else a fresh id (one more than the largest label);
* the feedback of a click: the object's pixels read back from the labels, so a hand edit
  since the editor's last write becomes the network's feedback;
* what undo, redo, reset and finish act on.

Only the network work runs in the background (through an
:class:`~napari_fcfi.annotation.executor.Executor`); its result is applied before the next
command. So any sequence of commands gives the same labels whether it is given slowly or
all at once: a click given right after "finish" is applied after the finish, exactly as if
it had been given a minute later, and never ends up in the finished object by accident.

The editor writes labels only through its
:class:`~napari_fcfi.annotation.store.LabelStore`: each click, undo or redo is one undo step
of the store, a reset or a whole propagation is one step too. Pixels of other objects are
kept unless the user allows overwriting them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..inference.settings import unit_setting
from . import commands as cmd
from .events import ClicksChanged, Error, Events, Idle, ObjectChanged, Progress, Status
from .executor import Executor, InlineExecutor
from .objects import EditorState
from .planes import SliceKey
from .predictors import PredictorCache, PredictorSettings
from .rules import Rules
from .sequencer import Sequencer
from .store import LabelStore

DEFAULT_THRESHOLD = 0.49


class AnnotationEditor:
    """Click-based editing of the objects of a label volume.

    Parameters
    ----------
    executor
        Runs the network work (default: :class:`InlineExecutor`, at once on this thread).
    predictors
        The model and predictor cache (default: the built-in model, loaded on first use).
    session_factory
        ``session_factory(predictor, image, feedback=...)`` for the click history of one
        plane; default :class:`~napari_fcfi.inference.session.InteractiveSession`.
    settings, threshold, correction_threshold
        The initial predictor settings and binarisation thresholds: ``threshold`` for the
        answer to an object's first click, ``correction_threshold`` (None: ``threshold``)
        for the answers with feedback (later clicks, a click on an existing label).

    Call :meth:`attach` with the labels and the image before the first click. Commands
    and :meth:`attach` must be called from the thread that owns the labels; events are
    emitted there too.
    """

    def __init__(
        self,
        executor: Executor | None = None,
        predictors: PredictorCache | None = None,
        session_factory: Callable | None = None,
        settings: PredictorSettings | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        correction_threshold: float | None = None,
    ):
        self.events = Events()
        self.predictors = predictors if predictors is not None else PredictorCache()
        #: pixels of other objects may be taken by the commands given from now on
        self.allow_overwrite = False
        self._state = EditorState(
            settings=settings if settings is not None else PredictorSettings(),
            threshold=unit_setting("threshold", threshold),
            correction_threshold=(
                None
                if correction_threshold is None
                else unit_setting("correction_threshold", correction_threshold)
            ),
        )
        self._sequencer = Sequencer(
            executor if executor is not None else InlineExecutor(),
            self._apply,
            lambda message: self.events.emit(Error(message)),
            lambda: self.events.emit(Idle()),
        )
        self._rules = Rules(
            self._state, self.events, self._sequencer, self.predictors, session_factory
        )

    # ------------------------------------------------------------------ target
    def attach(
        self,
        store: LabelStore,
        read_image: Callable[[SliceKey], np.ndarray],
        shape: tuple[int, ...],
    ) -> None:
        """Edit the labels of ``store`` over an image whose plane ``key`` is
        ``read_image(key)``; ``shape`` is ``(*stack_axes, Y, X)``. The current object,
        commands not yet applied and results still running are dropped."""
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ValueError(f"the image must have at least 2 axes, got shape {shape}")
        self._forget()
        st = self._state
        st.store, st.read_image, st.shape = store, read_image, shape

    def detach(self) -> None:
        """Stop editing (the labels or the image went away); nothing more is written."""
        self._forget()
        st = self._state
        st.store, st.read_image, st.shape = None, None, ()

    @property
    def attached(self) -> bool:
        return self._state.store is not None

    @property
    def store(self) -> LabelStore | None:
        return self._state.store

    def _forget(self) -> None:
        st = self._state
        self._sequencer.forget()
        st.cancel.set()
        if st.run is not None:
            st.run.discard()
            st.run = None
            self.events.emit(Progress(0, 0, False))
        if st.object is not None:
            st.object = None
            self.events.emit(ObjectChanged(None, st.next_id()))
        self.events.emit(ClicksChanged())

    # ------------------------------------------------------------------ state
    @property
    def object_id(self) -> int | None:
        """Label id of the object being edited (``None`` before its first click)."""
        return self._state.object_id

    @property
    def busy(self) -> bool:
        """True while commands wait or network work runs."""
        return self._sequencer.busy

    @property
    def executor(self) -> Executor:
        return self._sequencer.executor

    @property
    def propagating(self) -> bool:
        return self._state.run is not None

    @property
    def settings(self) -> PredictorSettings:
        """The predictor settings of the commands applied so far."""
        return self._state.settings

    @property
    def threshold(self) -> float:
        return self._state.threshold

    @property
    def correction_threshold(self) -> float:
        """The threshold of the answers with feedback (:attr:`threshold` unless set)."""
        ct = self._state.correction_threshold
        return self._state.threshold if ct is None else ct

    @property
    def slice_count(self) -> int:
        """Planes the current object has touched."""
        obj = self._state.object
        return 0 if obj is None else len(obj.slices)

    def clicks(self) -> list[tuple[SliceKey, int, int, bool]]:
        """The current object's clicks ``(key, y, x, positive)``, then its propagation stop
        markers (negative)."""
        obj = self._state.object
        return [] if obj is None else obj.clicks()

    # ------------------------------------------------------------------ commands
    def click(self, key: SliceKey, y: int, x: int, positive: bool = True) -> None:
        """A click at pixel ``(y, x)`` of plane ``key``.

        The first click of an object starts it: inside an existing label it continues that
        label, on the background (positive only) it takes a fresh id. A negative click on a
        plane where the object is absent marks where a propagation must stop.
        """
        self._submit(cmd.Click(tuple(key), int(y), int(x), bool(positive), self.allow_overwrite))

    def finish(self) -> None:
        """Finish the object; the next click starts a new one."""
        self._submit(cmd.Finish())

    def undo(self, key: SliceKey) -> None:
        """Undo the object's last propagation, else its last click on plane ``key``."""
        self._submit(cmd.Undo(tuple(key), self.allow_overwrite))

    def redo(self, key: SliceKey) -> None:
        """Redo what :meth:`undo` undid last."""
        self._submit(cmd.Redo(tuple(key), self.allow_overwrite))

    def reset(self) -> None:
        """Put the object's pixels back to what they were before it was started, on every
        plane (one undo step), and forget its clicks; it stays the current object."""
        self._submit(cmd.Reset())

    def propagate(self, key: SliceKey, iou_threshold: float = 0.5) -> None:
        """Carry the object from plane ``key`` through the stack along the last stack axis,
        both ways (see :mod:`napari_fcfi.stack.propagate`); one undo step."""
        self._submit(cmd.Propagate(tuple(key), float(iou_threshold), self.allow_overwrite))

    def set_threshold(
        self, threshold: float, key: SliceKey, correction_threshold: float | None = None
    ) -> None:
        """Binarise first-click answers at ``threshold`` and the answers with feedback at
        ``correction_threshold`` (None: ``threshold``) from now on; the object on plane
        ``key`` is redrawn."""
        t = unit_setting("threshold", threshold)
        ct = (
            None
            if correction_threshold is None
            else unit_setting("correction_threshold", correction_threshold)
        )
        self._submit(cmd.SetThreshold(tuple(key), t, self.allow_overwrite, ct))

    def configure(self, settings: PredictorSettings) -> None:
        """Use ``settings`` from the next click on; the object's click histories restart
        from its current pixels."""
        if not isinstance(settings, PredictorSettings):
            raise ValueError("settings must be a PredictorSettings")
        self._submit(cmd.Configure(settings))

    def cancel_propagation(self) -> bool:
        """Stop a running propagation after its current slice; the slices done so far are
        kept (one undo step). Returns False when none runs."""
        if self._state.run is None:
            return False
        self._state.cancel.set()
        self.events.emit(Status("cancelling propagation…"))
        return True

    def _submit(self, command) -> None:
        self._sequencer.submit(command)

    def _apply(self, command) -> None:
        self._rules.apply(command)
