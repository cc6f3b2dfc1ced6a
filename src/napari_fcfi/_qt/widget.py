"""The "Interactive segmentation (FCFI)" dock widget: layout and wiring.

Clicks in the "FCFI clicks" Points layer, the buttons and the shortcuts become commands of
an :class:`~napari_fcfi.annotation.editor.AnnotationEditor`, which edits the chosen
Labels layer through a :class:`~napari_fcfi.annotation.store.LabelStore` (one napari undo
step per click, reset or propagation). The editor applies commands in the order given;
its network work runs in a :class:`~napari_fcfi._qt.jobs.SerialJobQueue`, off the GUI
thread. The widget shows the editor's events: status, errors, propagation progress, and
the clicks of the current object once every command has been applied.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFormLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from .. import _layers
from ..annotation.editor import AnnotationEditor
from ..annotation.events import ClicksChanged, Error, Idle, ObjectChanged, Progress, Status
from ..annotation.planes import SliceKey
from ..annotation.predictors import PredictorCache, resolve_device
from .boxes import clicks_box, collapsible, save_box, scrolling_layout, stack_box
from .clicks import ClickInput
from .geometry import current_slice, locate, to_image_coords
from .jobs import SerialJobQueue, process_events_while
from .layer_choice import LayerChoice
from .saving import LabelsOutput
from .settings_panel import SettingsPanel
from .shortcuts import bind_shortcuts, help_text
from .status import StatusView
from .store import NapariLabelStore


class FCFIWidget(QWidget):
    """Dock widget for click-based segmentation with FCFI.

    Parameters
    ----------
    napari_viewer
        The viewer (napari injects it).
    model
        An FCFI network to use instead of loading one (e.g. a stand-in network in tests).
        ``None``: the model picker decides (the built-in model or a checkpoint file).
    predictor_factory
        ``predictor_factory(model, device=..., zoom_in=..., flip=..., threshold=...,
        first_click=...)``; default :class:`napari_fcfi.inference.predictor.Predictor`.
    session_factory
        ``session_factory(predictor, image, feedback=...)``; default
        :class:`napari_fcfi.inference.session.InteractiveSession`.
    jobs
        The job queue for network work (shared with other widgets); a new one by default.
    """

    def __init__(
        self,
        napari_viewer,
        model=None,
        predictor_factory: Callable | None = None,
        session_factory: Callable | None = None,
        parent=None,
        jobs: SerialJobQueue | None = None,
    ):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.jobs = jobs if jobs is not None else SerialJobQueue()
        self._attached: tuple = (None, None)
        self.input = ClickInput(
            self.viewer,
            on_click=self._handle_click,
            enabled=lambda: self.click_mode_check.isChecked(),
            on_error=self._show_error,
            on_polarity=self._update_polarity_label,
            bind_keys=self._bind_keys,
        )
        self._build_ui(model)
        first, corrections = self.panel.thresholds()
        self.editor = AnnotationEditor(
            executor=self.jobs,
            predictors=PredictorCache(model=model, predictor_factory=predictor_factory),
            session_factory=session_factory,
            settings=self.panel.predictor_settings(),
            threshold=first,
            correction_threshold=corrections,
        )
        self.editor.events.connect(self._on_editor_event)
        self.jobs.idle_callbacks.append(self._on_jobs_idle)
        self._bind_keys(self.viewer)
        self.viewer.layers.events.inserted.connect(self.layer_choice.refresh)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.mouse_drag_callbacks.append(self.input.on_viewer_drag)
        self.layer_choice.refresh()
        self._update_stack_group()
        self._update_device_hint()
        self.click_mode_check.setChecked(True)
        self._update_status()

    # ------------------------------------------------------------------ UI
    def _build_ui(self, model) -> None:
        layout = scrolling_layout(self)
        form = QFormLayout()
        self.layer_choice = LayerChoice(
            self.viewer, form, self._detach, self._on_image, bind_keys=self._bind_keys
        )
        self.image_combo, self.labels_combo = (
            self.layer_choice.image_combo,
            self.layer_choice.labels_combo,
        )
        # the model and inference settings fold away: the defaults suit most images
        settings_form = QFormLayout()
        self.settings_section = collapsible("Settings", settings_form)
        self.panel = SettingsPanel(
            settings_form,
            self,
            injected=model,
            on_predictor_change=self._on_predictor_setting,
            on_threshold=self._on_threshold,
        )
        for name in (
            "model_combo",
            "browse_button",
            "checkpoint_label",
            "device_combo",
            "objects_combo",
            "threshold_spin",
            "correction_spin",
            "zoom_check",
            "flip_check",
            "fit_check",
            "overwrite_check",
            "cpu_hint",
        ):
            setattr(self, name, getattr(self.panel, name))
        self.overwrite_check.toggled.connect(self._on_overwrite)
        layout.addLayout(form)
        layout.addWidget(self.settings_section)
        layout.addWidget(self.cpu_hint)

        layout.addWidget(clicks_box(self))
        self.click_mode_check.toggled.connect(self._on_click_mode)
        self._update_polarity_label()
        self.stack_group = stack_box(self)  # shown for stacks only
        layout.addWidget(self.stack_group)
        layout.addWidget(save_box(self))
        self.output = LabelsOutput(self, self.output_edit, self._show_error)
        self.busy_bar = QProgressBar()  # a click or other work in flight
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumHeight(6)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setVisible(False)
        layout.addWidget(self.busy_bar)
        self.status = StatusView(layout)
        self.status_label, self.error_label = self.status.status_label, self.status.error_label
        help_label = QLabel(help_text())
        help_label.setStyleSheet("color: gray;")
        help_label.setWordWrap(True)
        help_layout = QVBoxLayout()
        help_layout.addWidget(help_label)
        self.help_section = collapsible("Help", help_layout)
        layout.addWidget(self.help_section)
        layout.addStretch(1)

    def _bind_keys(self, target) -> None:
        bind_shortcuts(target, self)

    # --------------------------------------------------------------- layers
    def _detach(self) -> None:
        """The image or labels changed: the current object ends, nothing in flight lands."""
        if hasattr(self, "editor"):
            self.editor.detach()
        self._attached = (None, None)
        self._update_status()

    def _on_image(self, layer) -> None:
        self.input.image_layer = layer
        self._update_stack_group()
        # the clicks layer lives on the old image's grid: a new one is made for the new one
        self.input.remove()
        if layer is not None and self.click_mode_check.isChecked():
            # after the layer event that chose the image has been handled
            QTimer.singleShot(0, self._activate_clicks)

    def _update_stack_group(self) -> None:
        """The Stack controls are shown for stacks only."""
        if not hasattr(self, "stack_group"):
            return  # still building the UI
        layer = self.input.image_layer
        try:
            is_stack = layer is not None and len(_layers.spatial_shape(layer)) >= 3
        except ValueError:
            is_stack = False
        self.stack_group.setVisible(is_stack)

    def _on_layer_removed(self, event) -> None:
        layer = _layers.unwrap(event.value)
        if self.input.owns(layer):
            self.input.forget()
            self.click_mode_check.setChecked(False)
        self.layer_choice.removed(layer)
        self._update_status()

    def _ensure_layers(self):
        """The image and labels layers (labels and clicks layers are created when needed),
        attached to the editor."""
        image, labels = self.layer_choice.ensure()
        self.input.ensure()
        if self._attached != (image, labels):
            read = _layers.plane_reader(image)
            self.editor.attach(NapariLabelStore(labels), read, _layers.spatial_shape(image))
            self._attached = (image, labels)
        return image, labels

    @property
    def clicks_layer(self):
        """The "FCFI clicks" Points layer (created on first use)."""
        return self.input.ensure()

    @property
    def image_layer(self):
        return self.layer_choice.image

    @property
    def labels_layer(self):
        return self.layer_choice.labels

    @property
    def object_id(self) -> int | None:
        """Label id of the object being edited (``None`` before its first click)."""
        return self.editor.object_id

    @property
    def busy(self) -> bool:
        """True while commands wait or network work runs."""
        return self.editor.busy or self.jobs.busy

    def wait(self, timeout: float = 30.0) -> None:
        """Process Qt events until every command has been applied (scripts and tests)."""
        process_events_while(lambda: self.busy, timeout)

    def current_slice(self) -> SliceKey:
        """Key of the 2-D slice of the image that the viewer shows now."""
        return current_slice(self.viewer, self.layer_choice.image)

    # ------------------------------------------------------- click input
    def toggle_polarity(self) -> bool:
        """Flip the default polarity of new clicks; returns the new default (True: positive)."""
        return self.input.toggle_polarity()

    def _update_polarity_label(self) -> None:
        positive = self.input.default_positive
        self.polarity_label.setText(
            f"Default click: {'positive (green)' if positive else 'negative (red)'} [T toggles]"
        )

    def _on_click_mode(self, on: bool) -> None:
        if on:
            self._activate_clicks()
        self._update_status()

    def _activate_clicks(self) -> None:
        """Click mode: the clicks layer exists, is selected and in pan/zoom mode."""
        try:
            if not self.click_mode_check.isChecked() or self.layer_choice.image is None:
                return
            layer = self.input.ensure()
        except RuntimeError:  # the widget was closed and deleted by Qt
            return
        layer.mode = "pan_zoom"
        self.viewer.layers.selection.active = layer

    def add_click(self, coord, positive: bool | None = None) -> None:
        """Add a click at ``coord`` (clicks-layer data coordinates) with the given polarity
        (default: the layer's default polarity); segmentation follows at once."""
        self.input.add(coord, positive)

    def _handle_click(self, coord, positive: bool) -> None:
        try:
            self._ensure_layers()
            image = self.layer_choice.image
            key, y, x = locate(image, to_image_coords(image, coord, self.input.ensure()))
        except ValueError as exc:
            self._show_error(str(exc))
            self._sync_points()
            return
        self.status.clear_error()
        self.status.message = ""
        self.editor.click(key, y, x, positive)
        self._update_status()

    def _sync_points(self) -> None:
        """Show the current object's clicks, once every command has been applied."""
        if not self.editor.busy:
            self.input.sync(self.editor.clicks())

    # ---------------------------------------------------- public actions
    def undo(self) -> None:
        """Undo the last click (or propagation) of the current object on this slice."""
        self.editor.undo(self.current_slice())
        self._update_status()

    def redo(self) -> None:
        """Redo the click (or propagation) undone last."""
        self.editor.redo(self.current_slice())
        self._update_status()

    def finish_object(self) -> None:
        """Finish the current object; the next click starts a new one (fresh id)."""
        self.editor.finish()
        self._update_status()

    def reset_object(self) -> None:
        """Put the object's pixels back to what they were before it was started (all
        slices, one napari undo step) and forget its clicks; the object stays current."""
        self.editor.reset()
        self._update_status()

    def propagate(self) -> None:
        """Carry the current object from the current slice through the stack (last stack
        axis, both directions); see :mod:`napari_fcfi.stack.propagate`."""
        try:
            self._ensure_layers()
        except ValueError as exc:
            self._show_error(str(exc))
            return
        self.editor.propagate(self.current_slice(), float(self.iou_spin.value()))
        self._update_status()

    def cancel_propagation(self) -> None:
        """Stop a running propagation; the slices done so far are kept (one undo step)."""
        self.editor.cancel_propagation()

    # ------------------------------------------------------------ settings
    def set_checkpoint(self, path: str) -> None:
        """Use the checkpoint file ``path`` (as the file dialog does)."""
        self.panel.set_checkpoint(path)

    def _settings(self) -> dict:
        return self.panel.settings()

    @staticmethod
    def resolve_device(device: str) -> str:
        """``auto`` -> cuda, mps or cpu (whichever is available); others are checked."""
        return resolve_device(device)

    def _on_predictor_setting(self) -> None:
        """Model, device, kind of object, zoom-in, flip or fit changed: the next click uses a
        new predictor; the object's click histories restart from its pixels."""
        if not hasattr(self, "editor"):
            return  # still building the UI
        self.editor.configure(self.panel.predictor_settings())
        self._update_device_hint()

    def _on_threshold(self) -> None:
        if hasattr(self, "editor"):
            first, corrections = self.panel.thresholds()
            self.editor.set_threshold(first, self.current_slice(), corrections)

    def _on_overwrite(self, on: bool) -> None:
        self.editor.allow_overwrite = bool(on)

    def _update_device_hint(self) -> None:
        error = self.panel.device_error()
        if error is not None:
            self._show_error(error)

    # ------------------------------------------------------------ editor events
    def _on_editor_event(self, event) -> None:
        if isinstance(event, Error):
            self._show_error(event.message)
        elif isinstance(event, Status):
            self.status.message = event.message
        elif isinstance(event, ObjectChanged):
            labels = self.layer_choice.labels
            if labels is not None and labels in self.viewer.layers:
                labels.selected_label = (
                    event.next_id if event.object_id is None else event.object_id
                )
            if event.object_id is None and self.autosave_check.isChecked():
                self.save_labels(quiet=True)
        elif isinstance(event, Progress):
            self.progress.setVisible(event.running)
            self.cancel_button.setVisible(event.running)
            self.progress.setMaximum(max(event.total, 1))
            self.progress.setValue(event.done)
        elif isinstance(event, (ClicksChanged, Idle)):
            self._sync_points()
        self._update_status()

    def _on_jobs_idle(self) -> None:
        try:
            self._update_status()
        except RuntimeError:  # the widget was closed and deleted by Qt
            pass

    # ------------------------------------------------------------ status
    @property
    def last_error(self) -> str | None:
        """The last error shown (``None`` after a click that went through)."""
        return self.status.last_error

    # --------------------------------------------------------------- saving
    def set_output(self, path) -> None:
        """Save the labels to ``path`` (.tif) from now on (each finished object, when
        autosave is on, and on :meth:`save_labels`)."""
        self.output.set_path(path)

    def browse_output(self) -> None:
        self.output.browse()

    def save_labels(self, quiet: bool = False) -> bool:
        """Write the labels layer to the output file atomically; returns whether it did.
        With ``quiet``, having no output file is not an error."""
        return self.output.save(self.layer_choice.labels, quiet)

    def _show_error(self, message: str) -> None:
        self.status.show_error(message)

    def _update_status(self) -> None:
        if not hasattr(self, "status") or not hasattr(self, "editor"):
            return
        busy = self.busy
        self.status.show(
            self.editor.object_id,
            self.editor.slice_count,
            busy,
            click_mode=self.click_mode_check.isChecked(),
        )
        self.busy_bar.setVisible(busy and not self.editor.propagating)
        image = self.layer_choice.image
        is_stack = image is not None and len(_layers.spatial_shape(image)) > 2
        self.propagate_button.setEnabled(is_stack)
        self.propagate_button.setToolTip("" if is_stack else "needs an image with a Z or T axis")
