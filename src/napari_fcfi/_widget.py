"""The "Interactive segmentation (FCFI)" dock widget.

Clicks in the "FCFI clicks" Points layer drive an :class:`~napari_fcfi.InteractiveSession`
per 2-D slice; each result is written into a Labels layer under the current object's id on
that slice only, through napari's undo history. Before every click the object's pixels are
read back from the Labels layer, so a hand-painted edit becomes FCFI's feedback.

Threading model
---------------
All session work (model loading, inference, undo/redo) runs in napari ``thread_worker``
jobs that are executed **one at a time, in order** (a session is a chain: every click
starts from the previous probability map). Layers are only touched on the GUI thread, in
the jobs' completion callbacks. A click's result is *stale* when a newer click, undo or
redo of the same object is already queued; stale results are never written.

All state lives on the widget instance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import _layers
from ._layers import SliceKey

DEVICES = ("auto", "cpu", "cuda", "mps")
BUILTIN = "Built-in (fcfi-lite-dsb)"
CHECKPOINT = "Checkpoint file…"
INJECTED = "Provided model"
NEW_LABELS = "<new FCFI labels>"

# key -> (action, description); none of these is bound by napari on Points/Labels layers
# or on the viewer (napari uses Ctrl+Z / Ctrl+Shift+Z for the labels history, M for a new
# label, P/E/F/L/Z/1-7 for modes).
SHORTCUTS = {
    "T": ("toggle_polarity", "toggle the default click polarity (positive/negative)"),
    "U": ("undo", "undo the last click on this slice"),
    "Shift-U": ("redo", "redo the click"),
    "N": ("finish_object", "finish the object; the next click starts a new one"),
    "Shift-R": ("reset_object", "reset the object to what it was before it was started"),
    "G": ("propagate", "propagate the object through the stack"),
}


@dataclass
class _SliceState:
    """Per-slice state of the current object."""

    before: np.ndarray  # the label plane when the object first touched this slice
    written: np.ndarray  # the object's mask as last written (or read back) on this slice
    session: Any = None  # InteractiveSession, created in the worker on the first click


@dataclass
class _Job:
    work: Callable  # runs in a worker thread (function or generator function)
    on_done: Callable | None = None  # GUI thread, with work's return value
    on_yield: Callable | None = None  # GUI thread, generator jobs only
    on_error: Callable | None = None  # GUI thread, with the exception
    writes: bool = False  # a click/undo/redo whose result supersedes earlier ones
    object_id: int | None = None
    name: str = ""


class FCFIWidget(QWidget):
    """Dock widget for click-based segmentation with FCFI.

    Parameters
    ----------
    napari_viewer
        The viewer (napari injects it).
    model
        An FCFI network to use instead of loading one (e.g.
        :class:`napari_fcfi.model.stub.StubNet` in tests). ``None``: the model picker
        decides (the built-in model or a checkpoint file).
    predictor_factory
        ``predictor_factory(model, device=..., zoom_in=..., flip=..., threshold=...)``;
        default :class:`napari_fcfi.Predictor`.
    session_factory
        ``session_factory(predictor, image, feedback=...)``; default
        :class:`napari_fcfi.InteractiveSession`.
    """

    def __init__(
        self,
        napari_viewer,
        model=None,
        predictor_factory: Callable | None = None,
        session_factory: Callable | None = None,
        parent=None,
    ):
        super().__init__(parent)
        self.viewer = napari_viewer
        self._injected_model = model
        self._predictor_factory = predictor_factory
        self._session_factory = session_factory
        self._checkpoint: str | None = None

        self._image_layer = None
        self._labels_layer = None
        self._clicks_layer = None
        self._object_id: int | None = None
        self._slices: dict[SliceKey, _SliceState] = {}
        self._stop_points: list[tuple[SliceKey, float, float]] = []
        self._propagation: dict | None = None  # last propagation (for undo/redo)
        self._n_points = 0
        self._ignore_points = False

        self._queue: deque[_Job] = deque()
        self._worker = None
        self._current_job: _Job | None = None
        self._predictor = None
        self._predictor_key = None
        self._model = None
        self._model_key = None
        self.last_error: str | None = None

        self._build_ui()
        self._bind_keys(self.viewer)
        self.viewer.layers.events.inserted.connect(self._refresh_layer_choices)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._refresh_layer_choices()
        self._update_device_hint()
        self._update_status()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.image_combo.currentIndexChanged.connect(self._on_image_choice)
        self.labels_combo.currentIndexChanged.connect(self._on_labels_choice)
        form.addRow("Image", self.image_combo)
        form.addRow("Output labels", self.labels_combo)

        self.model_combo = QComboBox()
        if self._injected_model is not None:
            self.model_combo.addItem(f"{INJECTED} ({type(self._injected_model).__name__})")
        self.model_combo.addItems([BUILTIN, CHECKPOINT])
        self.model_combo.currentIndexChanged.connect(self._on_model_choice)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("choose an FCFI checkpoint file (.safetensors/.pth)")
        self.browse_button.clicked.connect(self._browse_checkpoint)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_button)
        form.addRow("Model", row)
        self.checkpoint_label = QLabel("")
        self.checkpoint_label.setWordWrap(True)
        form.addRow("", self.checkpoint_label)

        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_combo.currentIndexChanged.connect(self._on_predictor_setting)
        form.addRow("Device", self.device_combo)

        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.01, 0.99)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setValue(0.49)
        self.threshold_spin.valueChanged.connect(self._on_threshold)
        form.addRow("Threshold", self.threshold_spin)

        self.zoom_check = QCheckBox("Zoom-in")
        self.zoom_check.setChecked(True)
        self.flip_check = QCheckBox("Flip")
        self.flip_check.setChecked(True)
        self.zoom_check.toggled.connect(self._on_predictor_setting)
        self.flip_check.toggled.connect(self._on_predictor_setting)
        row = QHBoxLayout()
        row.addWidget(self.zoom_check)
        row.addWidget(self.flip_check)
        form.addRow("Inference", row)
        self.overwrite_check = QCheckBox("Allow overwriting other objects")
        form.addRow("", self.overwrite_check)
        layout.addLayout(form)

        self.cpu_hint = QLabel(
            "Running on the CPU: every click takes longer. A CUDA (or Apple MPS) GPU makes "
            "clicks near-instant."
        )
        self.cpu_hint.setWordWrap(True)
        self.cpu_hint.setStyleSheet("color: #e0a000;")
        layout.addWidget(self.cpu_hint)

        clicks_box = QGroupBox("Clicks")
        box = QVBoxLayout(clicks_box)
        self.click_mode_check = QCheckBox("Click mode (left: positive, right/Ctrl: negative)")
        self.click_mode_check.toggled.connect(self._on_click_mode)
        box.addWidget(self.click_mode_check)
        self.polarity_label = QLabel()
        box.addWidget(self.polarity_label)
        row = QHBoxLayout()
        self.undo_button = QPushButton("Undo [U]")
        self.redo_button = QPushButton("Redo [Shift+U]")
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        row.addWidget(self.undo_button)
        row.addWidget(self.redo_button)
        box.addLayout(row)
        row = QHBoxLayout()
        self.reset_button = QPushButton("Reset object [Shift+R]")
        self.finish_button = QPushButton("Finish object [N]")
        self.reset_button.clicked.connect(self.reset_object)
        self.finish_button.clicked.connect(self.finish_object)
        row.addWidget(self.reset_button)
        row.addWidget(self.finish_button)
        box.addLayout(row)
        layout.addWidget(clicks_box)

        stack_box = QGroupBox("Stack")
        form = QFormLayout(stack_box)
        self.iou_spin = QDoubleSpinBox()
        self.iou_spin.setRange(0.0, 1.0)
        self.iou_spin.setSingleStep(0.05)
        self.iou_spin.setValue(0.5)
        form.addRow("Stop below IoU", self.iou_spin)
        self.propagate_button = QPushButton("Propagate through stack [G]")
        self.propagate_button.clicked.connect(self.propagate)
        form.addRow(self.propagate_button)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_propagation)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        form.addRow(row)
        layout.addWidget(stack_box)

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff5050;")
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.error_label)
        keys = "\n".join(f"{k}: {d}" for k, (_, d) in SHORTCUTS.items())
        help_label = QLabel("Shortcuts\n" + keys)
        help_label.setStyleSheet("color: gray;")
        help_label.setWordWrap(True)
        layout.addWidget(help_label)
        layout.addStretch(1)
        self._on_model_choice()

    def _bind_keys(self, target) -> None:
        for key, (action, _) in SHORTCUTS.items():

            def callback(_target=None, _action=action):
                try:
                    getattr(self, _action)()
                except RuntimeError:  # the widget was closed and deleted by Qt
                    pass

            target.bind_key(key, callback, overwrite=True)

    # --------------------------------------------------------------- layers
    def _refresh_layer_choices(self, event=None) -> None:
        from napari.layers import Image, Labels

        def fill(combo, names, keep):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if keep in names:
                combo.setCurrentIndex(names.index(keep))
            combo.blockSignals(False)

        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image)]
        keep = self._image_layer.name if self._image_layer is not None else None
        fill(self.image_combo, images, keep)
        labels = [NEW_LABELS] + [ly.name for ly in self.viewer.layers if isinstance(ly, Labels)]
        keep = self._labels_layer.name if self._labels_layer is not None else NEW_LABELS
        fill(self.labels_combo, labels, keep)
        if self._image_layer is None or self._image_layer not in self.viewer.layers:
            self._on_image_choice()

    def _on_image_choice(self, index=None) -> None:
        name = self.image_combo.currentText()
        layer = _layers.unwrap(self.viewer.layers[name]) if name in self.viewer.layers else None
        if layer is not self._image_layer:
            self._drop_object()
            old_clicks, self._clicks_layer = self._clicks_layer, None
            self._image_layer = layer
            if old_clicks is not None and old_clicks in self.viewer.layers:
                # the clicks layer lives on the old image's grid: a new one is made on use
                self.viewer.layers.remove(old_clicks)
                self.click_mode_check.setChecked(False)
            if self._labels_layer is not None and layer is not None:
                try:
                    _layers.check_labels_match(layer, self._labels_layer)
                except ValueError:
                    self._labels_layer = None
                    self.labels_combo.setCurrentIndex(0)
        self._update_status()

    def _on_labels_choice(self, index=None) -> None:
        name = self.labels_combo.currentText()
        layer = (
            None
            if name == NEW_LABELS or name not in self.viewer.layers
            else _layers.unwrap(self.viewer.layers[name])
        )
        if layer is not self._labels_layer:
            self._drop_object()
            self._labels_layer = layer
            if layer is not None:
                self._bind_keys(layer)
        self._update_status()

    def _on_layer_removed(self, event) -> None:
        layer = _layers.unwrap(event.value)
        if layer is self._clicks_layer:
            self._clicks_layer = None
            self._stop_points = []
            self.click_mode_check.setChecked(False)
        if layer is self._image_layer or layer is self._labels_layer:
            # results still in flight for these layers are dropped when they arrive
            self._drop_object()
            if layer is self._image_layer:
                self._image_layer = None
            else:
                self._labels_layer = None
            self._propagation = None
        self._refresh_layer_choices()
        self._update_status()

    def _ensure_layers(self):
        """The image, labels and clicks layers, creating labels/clicks when needed."""
        image = self._image_layer
        if image is None or image not in self.viewer.layers:
            raise ValueError("no image layer: open an image and pick it in the widget")
        labels = self._labels_layer
        if labels is None or labels not in self.viewer.layers:
            labels = _layers.make_labels_layer(image)
            self.viewer.add_layer(labels)
            self._labels_layer = labels
            self._bind_keys(labels)
            self._refresh_layer_choices()
        _layers.check_labels_match(image, labels)
        self.clicks_layer  # noqa: B018 - create it
        return image, labels

    @property
    def clicks_layer(self):
        """The "FCFI clicks" Points layer (created on first use)."""
        layer = self._clicks_layer
        if layer is None or layer not in self.viewer.layers:
            if self._image_layer is None:
                raise ValueError("no image layer: open an image and pick it in the widget")
            layer = _layers.make_clicks_layer(self._image_layer)
            layer.events.data.connect(self._on_points_data)
            layer.events.feature_defaults.connect(self._update_polarity_label)
            layer.mouse_drag_callbacks.append(self._on_mouse_drag)
            self._bind_keys(layer)
            self._clicks_layer = layer
            self._n_points = 0
            self.viewer.add_layer(layer)
            self._update_polarity_label()
        return layer

    @property
    def image_layer(self):
        return self._image_layer

    @property
    def labels_layer(self):
        return self._labels_layer

    @property
    def object_id(self) -> int | None:
        """Label id of the object being edited (``None`` before its first click)."""
        return self._object_id

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        return self._worker is not None or bool(self._queue)

    # --------------------------------------------------------- geometry
    def _to_image_coords(self, coord, source_layer) -> np.ndarray:
        world = source_layer.data_to_world(np.asarray(coord, dtype=float))
        return np.asarray(self._image_layer.world_to_data(world), dtype=float)

    def _locate(self, data_coord) -> tuple[SliceKey, int, int]:
        """Image data coordinates -> (slice key, y, x), ``ValueError`` outside the image."""
        shape = _layers.spatial_shape(self._image_layer)
        idx = np.round(np.asarray(data_coord, dtype=float)).astype(int)
        if idx.shape[0] != len(shape):
            raise ValueError(f"click has {idx.shape[0]} coordinates, the image {len(shape)} axes")
        if np.any(idx < 0) or np.any(idx >= np.asarray(shape)):
            raise ValueError("click is outside the image")
        return tuple(int(i) for i in idx[:-2]), int(idx[-2]), int(idx[-1])

    def current_slice(self) -> SliceKey:
        """Key of the 2-D slice of the image that the viewer shows now."""
        if self._image_layer is None:
            return ()
        shape = _layers.spatial_shape(self._image_layer)
        data = np.asarray(self._image_layer.world_to_data(self.viewer.dims.point), dtype=float)
        idx = np.clip(np.round(data[: len(shape) - 2]).astype(int), 0, np.asarray(shape[:-2]) - 1)
        return tuple(int(i) for i in idx)

    # ------------------------------------------------------- click input
    def toggle_polarity(self) -> bool:
        """Flip the default polarity of new clicks; returns the new default (True: positive)."""
        layer = self.clicks_layer
        new = not bool(layer.feature_defaults["positive"].iloc[0])
        layer.feature_defaults = {"positive": new}
        self._update_polarity_label()
        return new

    def _update_polarity_label(self, event=None) -> None:
        positive = True
        if self._clicks_layer is not None:
            positive = bool(self._clicks_layer.feature_defaults["positive"].iloc[0])
        self.polarity_label.setText(
            f"Default click: {'positive (green)' if positive else 'negative (red)'} [T toggles]"
        )

    def _on_click_mode(self, on: bool) -> None:
        if not on:
            return
        try:
            self._ensure_layers()
        except ValueError as exc:
            self._show_error(str(exc))
            self.click_mode_check.setChecked(False)
            return
        layer = self.clicks_layer
        layer.mode = "pan_zoom"
        self.viewer.layers.selection.active = layer

    def _on_mouse_drag(self, layer, event):
        """Click mode: a click without drag adds a point (dragging still pans)."""
        if not self.click_mode_check.isChecked() or layer.mode != "pan_zoom":
            return
        if event.button not in (1, 2):
            return
        if self.viewer.dims.ndisplay != 2:
            self._show_error("switch the viewer to 2-D (Ctrl+Y) to click")
            return
        n = self.viewer.dims.ndim
        if sorted(self.viewer.dims.displayed) != [n - 2, n - 1]:
            self._show_error(
                "FCFI segments Y/X planes: transpose/roll the axes back so that Y, X are shown"
            )
            return
        start = np.asarray(event.pos, dtype=float)
        yield
        moved = False
        while event.type == "mouse_move":
            if np.hypot(*(np.asarray(event.pos, dtype=float) - start)) > 4:
                moved = True
            yield
        if moved:
            return
        default = bool(layer.feature_defaults["positive"].iloc[0])
        negative = event.button == 2 or "Control" in event.modifiers
        coord = layer.world_to_data(event.position)
        self.add_click(coord, (not default) if negative else default)

    def add_click(self, coord, positive: bool | None = None) -> None:
        """Add a click at ``coord`` (clicks-layer data coordinates) with the given polarity
        (default: the layer's default polarity); segmentation follows at once."""
        layer = self.clicks_layer
        if positive is None:
            layer.add(coord)
            return
        old = layer.feature_defaults
        layer.feature_defaults = {"positive": bool(positive)}
        try:
            layer.add(coord)
        finally:
            layer.feature_defaults = old

    def _on_points_data(self, event) -> None:
        from napari.layers.base import ActionType

        layer = self._clicks_layer
        if layer is None:
            return
        start, self._n_points = self._n_points, len(layer.data)
        # only points appended since the last event are new clicks; our own rewrites of
        # the layer (undo/redo/finish) are ignored
        if event.action != ActionType.ADDED or self._ignore_points:
            return
        for i in range(start, len(layer.data)):
            positive = bool(layer.features["positive"].iloc[i])
            self._handle_click(layer.data[i], positive)

    def _handle_click(self, coord, positive: bool) -> None:
        try:
            image, labels = self._ensure_layers()
            key, y, x = self._locate(self._to_image_coords(coord, self.clicks_layer))
        except ValueError as exc:
            self._show_error(str(exc))
            self._sync_points()
            return
        self._clear_error()
        self._status_message = ""
        if self._object_id is None:
            value = int(np.asarray(labels.data[key])[y, x])
            if value == 0 and not positive:
                self._show_error("start an object with a positive click (or click inside a label)")
                self._sync_points()
                return
            # clicking inside an existing label continues that object (a negative click
            # there corrects it)
            self._object_id = value if value != 0 else _layers.next_free_id(labels)
            labels.selected_label = self._object_id
        object_id = self._object_id
        state = self._slices.get(key)
        current = _layers.read_object(labels, key, object_id)
        if state is None:
            if not positive and not current.any():
                # a negative click where the object is absent marks a propagation stop
                self._stop_points.append((key, float(y), float(x)))
                self._set_status(f"stop marker on slice {key} for propagation")
                return
            state = _SliceState(before=_layers.read_plane(labels, key), written=current)
            self._slices[key] = state
        feedback = None
        if not np.array_equal(current, state.written):
            feedback = current  # a hand edit since our last write: it is the new feedback
            state.written = current
        read = _layers.slice_reader(_layers.image_data(image))
        settings = self._settings()

        def work():
            predictor = self._get_predictor(settings)
            if state.session is None:
                # a new session starts from the object's current label on this slice
                start = state.written if state.written.any() else None
                state.session = self._new_session(predictor, read(key), start)
            elif feedback is not None:
                state.session.set_feedback(feedback)
            state.session.add_click(y, x, positive)
            return self._session_mask(state)

        def done(mask):
            self._write_result(key, state, object_id, mask)

        self._submit(
            _Job(work, on_done=done, writes=True, object_id=object_id, name="click"),
        )

    # ------------------------------------------------------------ engine
    def _settings(self) -> dict:
        text = self.model_combo.currentText()
        if text.startswith(INJECTED):
            source = "injected"
        elif text == CHECKPOINT:
            source = self._checkpoint or ""
        else:
            source = None
        return {
            "source": source,
            "device": self.device_combo.currentText(),
            "zoom_in": self.zoom_check.isChecked(),
            "flip": self.flip_check.isChecked(),
            "threshold": float(self.threshold_spin.value()),
        }

    @staticmethod
    def resolve_device(device: str) -> str:
        """``auto`` -> cuda, mps or cpu (whichever is available); others are checked."""
        import torch

        if device == "auto":
            from .model.io import default_device

            return default_device().type
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was chosen but torch sees no CUDA GPU; pick 'auto' or 'cpu'")
        if device == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise ValueError("MPS was chosen but it is not available; pick 'auto' or 'cpu'")
        return device

    def _get_predictor(self, settings: dict):
        """The predictor for ``settings`` (worker thread; loads the model when needed)."""
        device = self.resolve_device(settings["device"])
        source = settings["source"]
        if source == "":
            raise ValueError("choose a checkpoint file with 'Browse…' first")
        model_key = (source, device)
        if self._model is None or self._model_key != model_key:
            if source == "injected":
                model = self._injected_model.to(device).eval()
            else:
                import napari_fcfi

                model = napari_fcfi.load_model(source, device=device)
            self._model, self._model_key = model, model_key
            self._predictor = None
        key = (model_key, settings["zoom_in"], settings["flip"])
        if self._predictor is None or self._predictor_key != key:
            factory = self._predictor_factory
            if factory is None:
                import napari_fcfi

                factory = napari_fcfi.Predictor
            self._predictor = factory(
                self._model,
                device=device,
                zoom_in=settings["zoom_in"],
                flip=settings["flip"],
                threshold=settings["threshold"],
            )
            self._predictor_key = key
        self._predictor.threshold = settings["threshold"]
        return self._predictor

    def _new_session(self, predictor, image, feedback):
        factory = self._session_factory
        if factory is None:
            import napari_fcfi

            factory = napari_fcfi.InteractiveSession
        fb = None if feedback is None else np.asarray(feedback, dtype=np.float32)
        return factory(predictor, image, feedback=fb)

    @staticmethod
    def _session_mask(state: _SliceState) -> np.ndarray:
        return np.array(state.session.mask, dtype=bool, copy=True)

    # ------------------------------------------------------------- jobs
    def _submit(self, job: _Job) -> None:
        self._queue.append(job)
        self._update_status()
        self._start_next()

    def _start_next(self) -> None:
        from napari.qt.threading import thread_worker

        if self._worker is not None or not self._queue:
            self._update_status()
            return
        job = self._queue.popleft()
        self._current_job = job
        worker = thread_worker(
            job.work,
            start_thread=False,
            # our handler replaces napari's default "re-raise in the GUI thread"
            connect={"errored": lambda exc, job=job: self._job_errored(job, exc)},
        )()
        if job.on_yield is not None:
            worker.yielded.connect(job.on_yield)
            # a generator worker that was quit emits `aborted` instead of `returned`
            worker.aborted.connect(lambda job=job: self._job_returned(job, None))
        worker.returned.connect(lambda result, job=job: self._job_returned(job, result))
        worker.finished.connect(lambda job=job: self._job_finished(job))
        self._worker = worker
        self._update_status()
        worker.start()

    def _stale(self, job: _Job) -> bool:
        """A newer write of the same object is queued: this result must not be shown."""
        return any(j.writes and j.object_id == job.object_id for j in self._queue)

    def _job_returned(self, job: _Job, result) -> None:
        if job.on_done is None:
            return
        if job.writes and self._stale(job):
            return
        try:
            job.on_done(result)
        except ValueError as exc:
            self._show_error(str(exc))

    def _job_errored(self, job: _Job, exc: BaseException) -> None:
        if job.on_error is not None:
            job.on_error(exc)
        self._show_error(f"{type(exc).__name__}: {exc}")
        if job.name == "click":
            self._sync_points()

    def _job_finished(self, job: _Job) -> None:
        self._worker = None
        self._current_job = None
        if not self._queue:
            self._sync_points()
        self._start_next()

    def wait(self, timeout: float = 30.0) -> None:
        """Process Qt events until all queued jobs are done (for scripts and tests)."""
        import time

        from qtpy.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > end:
                raise TimeoutError("FCFI jobs still running")
            QApplication.processEvents()
            time.sleep(0.002)

    # ---------------------------------------------------- writing labels
    def _alive(self, object_id, key=None, state=None) -> bool:
        """The result of a job is still wanted: same object, layers still there."""
        labels = self._labels_layer
        if labels is None or labels not in self.viewer.layers:
            return False
        if object_id != self._object_id:
            return False
        return key is None or self._slices.get(key) is state

    def _write_result(self, key, state, object_id, mask) -> None:
        if not self._alive(object_id, key, state):
            return
        state.written = _layers.write_object(
            self._labels_layer, key, mask, object_id, self.overwrite_check.isChecked()
        )
        self._propagation = None  # a newer edit: undo now means "undo click"
        self._update_status()

    # ---------------------------------------------------- public actions
    def undo(self) -> None:
        """Undo the last click (or propagation) of the current object on this slice."""
        if self._propagation is not None and not self._propagation["undone"]:
            self._undo_propagation(True)
            return
        self._session_step("undo")

    def redo(self) -> None:
        """Redo the click (or propagation) undone last."""
        if self._propagation is not None and self._propagation["undone"]:
            self._undo_propagation(False)
            return
        self._session_step("redo")

    def _session_step(self, which: str) -> None:
        key = self.current_slice()
        state = self._slices.get(key)
        if state is None or self._object_id is None:
            self._set_status(f"nothing to {which} on this slice")
            return
        object_id = self._object_id

        def work():
            session = state.session
            if session is None or not getattr(session, f"can_{which}"):
                return None
            getattr(session, which)()
            return self._session_mask(state)

        def done(mask):
            if mask is None:
                self._set_status(f"nothing to {which} on this slice")
                return
            self._write_result(key, state, object_id, mask)

        self._submit(_Job(work, on_done=done, writes=True, object_id=object_id, name=which))

    def _undo_propagation(self, undo: bool) -> None:
        """Undo (or redo) the last propagation as one step, pixel by pixel: only pixels
        that still hold the propagation's result (or the state before it) change."""
        prop = self._propagation
        labels = self._labels_layer
        if labels is None or labels not in self.viewer.layers:
            self._propagation = None
            return
        src, dst = (prop["after"], prop["before"]) if undo else (prop["before"], prop["after"])
        with _layers.history_group(labels):
            for k, target in dst.items():
                plane = _layers.read_plane(labels, k)
                _layers.set_plane(labels, k, np.where(plane == src[k], target, plane))
        prop["undone"] = undo
        for k in dst:
            state = self._slices.get(k)
            if state is not None:
                state.written = _layers.read_object(labels, k, prop["object_id"])
        self._set_status(("undid" if undo else "redid") + f" propagation over {len(dst)} slices")

    def finish_object(self) -> None:
        """Finish the current object; the next click starts a new one (fresh id)."""

        def done(_):
            self._drop_object()
            if self._labels_layer is not None and self._labels_layer in self.viewer.layers:
                self._labels_layer.selected_label = _layers.next_free_id(self._labels_layer)
            self._set_status("object finished; the next click starts a new object")

        self._submit(_Job(lambda: None, on_done=done, name="finish"))

    def reset_object(self) -> None:
        """Put the object's pixels back to what they were before it was started (all
        slices, one napari undo step) and forget its clicks; the object stays current."""
        object_id = self._object_id

        def done(_):
            labels = self._labels_layer
            if object_id is None or not self._alive(object_id):
                return
            with _layers.history_group(labels):
                for key, state in self._slices.items():
                    plane = _layers.read_plane(labels, key)
                    new = np.where(plane == object_id, state.before, plane)
                    _layers.set_plane(labels, key, new)
            self._slices.clear()
            self._stop_points = []
            self._propagation = None
            self._set_status(f"object {object_id} reset")

        self._submit(_Job(lambda: None, on_done=done, name="reset"))

    def _drop_object(self) -> None:
        """Forget the current object without touching labels."""
        self._object_id = None
        self._slices = {}
        self._stop_points = []
        self._propagation = None
        if self._clicks_layer is not None:
            self._sync_points(force=True)
        self._update_status()

    # ------------------------------------------------------ propagation
    def propagate(self) -> None:
        """Carry the current object from the current slice through the stack (last stack
        axis, both directions); see :mod:`napari_fcfi.stack.propagate`."""
        from .stack.propagate import iter_propagate

        try:
            image, labels = self._ensure_layers()
        except ValueError as exc:
            self._show_error(str(exc))
            return
        shape = _layers.spatial_shape(image)
        if len(shape) < 3:
            self._show_error("propagation needs a stack (an image with a Z or T axis)")
            return
        if self._object_id is None:
            self._show_error("segment an object first, then propagate it")
            return
        object_id = self._object_id
        key = self.current_slice()
        mask = _layers.read_object(labels, key, object_id)
        if not mask.any():
            self._show_error(f"object {object_id} is empty on this slice; click it first")
            return
        stops = {k[-1] for k, _, _ in self._stop_points if k[:-1] == key[:-1]}
        read = _layers.slice_reader(_layers.image_data(image))
        settings = self._settings()
        iou_threshold = float(self.iou_spin.value())
        prefix = key[:-1]
        # slices are previewed as they arrive and committed at the end (also on cancel)
        # as ONE napari history step
        run = {"before": {}, "after": {}, "stopped": []}

        def work():
            predictor = self._get_predictor(settings)
            yield from iter_propagate(
                lambda img, fb: self._new_session(predictor, img, fb),
                lambda i: read(prefix + (i,)),
                key[-1],
                mask,
                shape[-3],
                iou_threshold=iou_threshold,
                stop_slices=stops,
            )

        def on_yield(step):
            self.progress.setMaximum(max(step.total, 1))
            self.progress.setValue(step.done)
            if step.mask is None:
                run["stopped"].append((step.index, step.stopped))
                return
            if not self._alive(object_id):
                return
            k = prefix + (step.index,)
            plane = _layers.read_plane(labels, k)
            new = _layers.compose_object(
                plane, step.mask, object_id, self.overwrite_check.isChecked()
            )
            run["before"].setdefault(k, plane)
            run["after"][k] = new
            labels.data[k] = new  # preview only; recorded in the history in finish()
            labels.refresh()

        def finish():
            self.progress.setVisible(False)
            self.cancel_button.setVisible(False)
            after = run["after"]
            if not after or not self._alive(object_id):
                self._set_status("propagation: nothing written")
                return
            for k, plane in run["before"].items():
                labels.data[k] = plane
            with _layers.history_group(labels):
                for k, plane in after.items():
                    _layers.set_plane(labels, k, plane)
            for k, plane in after.items():
                state = self._slices.get(k)
                if state is None:
                    state = self._slices[k] = _SliceState(
                        before=run["before"][k].copy(), written=plane == object_id
                    )
                state.written = plane == object_id
                state.session = None  # the next click there starts from this mask
            self._propagation = {
                "before": run["before"],
                "after": after,
                "object_id": object_id,
                "undone": False,
            }
            why = ", ".join(f"slice {i}: {r}" for i, r in run["stopped"]) or "end of stack"
            self._set_status(
                f"propagated object {object_id} to {len(after)} slices (stopped at {why})"
            )

        job = _Job(work, on_yield=on_yield, on_done=lambda _: finish(), name="propagate")
        job.on_error = lambda exc: finish()
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self._submit(job)

    def cancel_propagation(self) -> None:
        """Stop a running propagation; the slices done so far are kept (one undo step)."""
        worker, job = self._worker, self._current_job
        if worker is None or job is None or job.name != "propagate":
            return
        worker.quit()
        self._set_status("cancelling propagation…")

    # ------------------------------------------------------------ points
    def _sync_points(self, force: bool = False) -> None:
        """Make the clicks layer show the current object's clicks (and stop markers)."""
        layer = self._clicks_layer
        if layer is None or layer not in self.viewer.layers or self._image_layer is None:
            return
        if self.busy and not force:
            return
        rows, flags = [], []
        for key, state in self._slices.items():
            if state.session is None:
                continue
            for y, x, positive in state.session.clicks:
                rows.append((*key, y, x))
                flags.append(bool(positive))
        for key, y, x in self._stop_points:
            rows.append((*key, y, x))
            flags.append(False)
        ndim = layer.ndim
        data = np.asarray(rows, dtype=float).reshape(-1, ndim)
        if len(data):
            world = np.array([self._image_layer.data_to_world(r) for r in data])
            data = np.array([layer.world_to_data(w) for w in world]).reshape(-1, ndim)
        old = layer.data
        old_flags = layer.features["positive"].to_numpy(dtype=bool)
        if old.shape == data.shape and np.allclose(old, data) and np.array_equal(old_flags, flags):
            return
        self._ignore_points = True
        try:
            defaults = layer.feature_defaults
            layer.selected_data = set()
            layer.data = data
            layer.features = {"positive": np.asarray(flags, dtype=bool)}
            layer.feature_defaults = defaults
            if hasattr(layer, "refresh_colors"):
                layer.refresh_colors()
        finally:
            self._ignore_points = False
            self._n_points = len(layer.data)

    # ------------------------------------------------------------ model UI
    def _on_model_choice(self, index=None) -> None:
        checkpoint = self.model_combo.currentText() == CHECKPOINT
        self.browse_button.setEnabled(checkpoint)
        if checkpoint and self._checkpoint:
            self.checkpoint_label.setText(self._checkpoint)
        elif checkpoint:
            self.checkpoint_label.setText("no checkpoint chosen: use Browse…")
        else:
            self.checkpoint_label.setText("")
        self._on_predictor_setting()

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "FCFI checkpoint",
            str(Path.home()),
            "Checkpoints (*.safetensors *.pth *.pt);;All files (*)",
        )
        if path:
            self.set_checkpoint(path)

    def set_checkpoint(self, path: str) -> None:
        """Use the checkpoint file ``path`` (as the file dialog does)."""
        if not Path(path).is_file():
            raise ValueError(f"checkpoint file {path!r} does not exist")
        self._checkpoint = str(path)
        self.model_combo.setCurrentText(CHECKPOINT)
        self._on_model_choice()

    def _on_predictor_setting(self, *args) -> None:
        """Model, device, zoom-in or flip changed: the next click uses a new predictor.

        The click histories of the current object are dropped (its labels stay and are
        the feedback of the next click)."""
        if not hasattr(self, "overwrite_check"):
            return  # still building the UI

        def done(_=None):
            # sessions hold the old predictor; the next click starts a new one per slice
            for state in self._slices.values():
                state.session = None
            self._sync_points()
            self._update_device_hint()

        if self.busy:
            self._submit(_Job(lambda: None, on_done=done, name="settings"))
        else:
            done()

    def _on_threshold(self, value: float) -> None:
        key = self.current_slice()
        state = self._slices.get(key)
        object_id = self._object_id
        settings = self._settings()

        def work():
            if self._predictor is not None:
                self._predictor.threshold = settings["threshold"]
            if state is None or state.session is None or not state.session.clicks:
                return None
            return self._session_mask(state)

        def done(mask):
            if mask is not None:
                self._write_result(key, state, object_id, mask)

        self._submit(_Job(work, on_done=done, writes=True, object_id=object_id, name="threshold"))

    def _update_device_hint(self) -> None:
        try:
            device = self.resolve_device(self.device_combo.currentText())
        except ValueError as exc:
            self._show_error(str(exc))
            device = "cpu"
        self.cpu_hint.setVisible(device == "cpu")

    # ------------------------------------------------------------ status
    def _show_error(self, message: str) -> None:
        self.last_error = message
        self.error_label.setText(message)
        try:
            from napari.utils.notifications import show_warning

            show_warning(f"FCFI: {message}")
        except Exception:  # pragma: no cover - notifications are best effort
            pass

    def _clear_error(self) -> None:
        self.last_error = None
        self.error_label.setText("")

    def _set_status(self, message: str) -> None:
        self._status_message = message
        self._update_status()

    def _update_status(self) -> None:
        if not hasattr(self, "status_label"):
            return
        parts = []
        if self._object_id is None:
            parts.append("object: none (click a cell)")
        else:
            parts.append(f"object: {self._object_id}")
        if self._slices:
            parts.append(f"slices: {len(self._slices)}")
        if self.busy:
            parts.append("working…")
        msg = getattr(self, "_status_message", "")
        self.status_label.setText(" | ".join(parts) + (f"\n{msg}" if msg else ""))
        is_stack = (
            self._image_layer is not None and len(_layers.spatial_shape(self._image_layer)) > 2
        )
        self.propagate_button.setEnabled(is_stack)
        self.propagate_button.setToolTip("" if is_stack else "needs an image with a Z or T axis")
