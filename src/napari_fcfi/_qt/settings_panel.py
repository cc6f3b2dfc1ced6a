"""The model and inference settings of the interactive widget.

:class:`SettingsPanel` holds the model picker (a built-in model by name, a checkpoint
file, or a model handed to the widget), the device, the kind of object (from the chosen
built-in model's presets) and the two thresholds (first click, corrections), the zoom-in /
flip / fit-to-object switches and "allow overwriting other objects", and turns them into a
:class:`~napari_fcfi.annotation.predictors.PredictorSettings`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from ..annotation.predictors import (
    INJECTED,
    PredictorSettings,
    builtin_thresholds,
    resolve_device,
)
from ..devices import DEVICES
from ..model.catalogue import DEFAULT_MODEL, builtin_names, description

CHECKPOINT = "Checkpoint file…"
PROVIDED = "Provided model"


def builtin_label(name: str) -> str:
    """The model picker's entry for the built-in model ``name``."""
    return f"Built-in: {name} ({description(name)})"


class SettingsPanel:
    """The settings rows of ``form``.

    ``injected``: a model handed to the widget (offered first in the model picker).
    ``on_predictor_change()`` follows a change of model, device, zoom-in, flip or fit;
    ``on_threshold()`` a change of either threshold (read them with :meth:`thresholds`).
    """

    def __init__(
        self,
        form: QFormLayout,
        parent: QWidget,
        injected=None,
        on_predictor_change: Callable[[], None] | None = None,
        on_threshold: Callable[[], None] | None = None,
    ):
        self._parent = parent
        self._on_predictor_change = on_predictor_change or (lambda: None)
        self._checkpoint: str | None = None
        self._ready = False

        self.model_combo = QComboBox()
        if injected is not None:
            self.model_combo.addItem(f"{PROVIDED} ({type(injected).__name__})", "provided")
        for name in builtin_names():
            self.model_combo.addItem(builtin_label(name), f"builtin:{name}")
        self.model_combo.addItem(CHECKPOINT, "checkpoint")
        self.model_combo.setToolTip(
            "The network: a built-in model (each is validated on the kind of images its "
            "description names) or a checkpoint file of your own."
        )
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
        self.device_combo.currentIndexChanged.connect(self._changed)
        form.addRow("Device", self.device_combo)

        self._on_threshold = on_threshold or (lambda: None)
        self._presets_of = DEFAULT_MODEL  # the built-in model whose presets are offered
        self._presets = builtin_thresholds(DEFAULT_MODEL)
        self.objects_combo = QComboBox()
        self._fill_objects()
        self.objects_combo.setToolTip(
            "The kind of object you segment: sets the two thresholds to the values validated "
            "for the chosen built-in model on it (nuclei: corrections keep small nuclei from "
            "shrinking)."
        )
        form.addRow("Objects", self.objects_combo)
        self.threshold_spin = QDoubleSpinBox()
        self.correction_spin = QDoubleSpinBox()
        for spin in (self.threshold_spin, self.correction_spin):
            spin.setRange(0.01, 0.99)
            spin.setSingleStep(0.01)
        self.threshold_spin.setToolTip("binarises the answer to an object's first click")
        self.correction_spin.setToolTip(
            "binarises the answers to the later clicks (and to a click on an existing label)"
        )
        self._set_spins(self._presets["any"])
        for spin in (self.threshold_spin, self.correction_spin):
            spin.valueChanged.connect(self._threshold_changed)
        self.objects_combo.currentIndexChanged.connect(self._on_objects)
        row = QHBoxLayout()
        row.addWidget(QLabel("first click"))
        row.addWidget(self.threshold_spin)
        row.addWidget(QLabel("corrections"))
        row.addWidget(self.correction_spin)
        form.addRow("Threshold", row)

        self.zoom_check = QCheckBox("Zoom-in")
        self.zoom_check.setChecked(True)
        self.flip_check = QCheckBox("Flip")
        self.flip_check.setChecked(True)
        self.flip_check.setToolTip(
            "Average the prediction with those of the mirrored image (the model's flips: "
            "left-right, or left-right and up-down for the built-in model)."
        )
        self.fit_check = QCheckBox("Fit to object")
        self.fit_check.setChecked(True)
        self.fit_check.setToolTip(
            "First click of an object: a quick pass measures the object, then the network "
            "sees it at the scale it was trained at, whatever its size in the image "
            "(used with zoom-in)."
        )
        row = QHBoxLayout()
        for check in (self.zoom_check, self.flip_check, self.fit_check):
            check.toggled.connect(self._changed)
            row.addWidget(check)
        form.addRow("Inference", row)
        self.overwrite_check = QCheckBox("Allow overwriting other objects")
        form.addRow("", self.overwrite_check)

        self.cpu_hint = QLabel(
            "Running on the CPU: every click takes longer. A CUDA (or Apple MPS) GPU makes "
            "clicks near-instant."
        )
        self.cpu_hint.setWordWrap(True)
        self.cpu_hint.setStyleSheet("color: #e0a000;")
        self._on_model_choice()
        self._ready = True

    # ------------------------------------------------------------------ values
    def thresholds(self) -> tuple[float, float]:
        """(first click, corrections) thresholds."""
        return float(self.threshold_spin.value()), float(self.correction_spin.value())

    def set_objects(self, name: str) -> None:
        """Choose the kind of object ``name`` (``"any"`` or one of the model's presets)."""
        index = self.objects_combo.findData(name)
        if index < 0:
            raise ValueError(
                f"unknown kind of object {name!r}; choose one of {list(self._presets)}"
            )
        self.objects_combo.setCurrentIndex(index)

    def _fill_objects(self, keep: str = "any") -> None:
        """The kinds of object of the current presets, ``keep`` chosen when offered."""
        self.objects_combo.blockSignals(True)
        self.objects_combo.clear()
        for name in self._presets:
            self.objects_combo.addItem("Any object" if name == "any" else name.capitalize(), name)
        index = self.objects_combo.findData(keep)
        self.objects_combo.setCurrentIndex(max(index, 0))
        self.objects_combo.blockSignals(False)

    def _set_spins(self, values: tuple[float, float]) -> None:
        for spin, v in zip((self.threshold_spin, self.correction_spin), values, strict=True):
            spin.blockSignals(True)
            spin.setValue(v)
            spin.blockSignals(False)

    def _on_objects(self, index=None) -> None:
        self._set_spins(self._presets[self.objects_combo.currentData()])
        self._threshold_changed()
        self._changed()  # the preset's other settings (e.g. edge-guided corrections)

    def _threshold_changed(self, *args) -> None:
        if self._ready:
            self._on_threshold()

    def settings(self) -> dict:
        """The settings as a plain dict (``source``, ``device``, ``zoom_in``, ``flip``,
        ``fit``, ``objects``, ``threshold``, ``correction_threshold``)."""
        kind, _, name = self.model_combo.currentData().partition(":")
        if kind == "provided":
            source = INJECTED
        elif kind == "checkpoint":
            source = self._checkpoint or ""
        else:
            source = None if name == DEFAULT_MODEL else name
        return {
            "source": source,
            "device": self.device_combo.currentText(),
            "zoom_in": self.zoom_check.isChecked(),
            "flip": self.flip_check.isChecked(),
            "fit": self.fit_check.isChecked(),
            "objects": self.objects_combo.currentData(),
            "threshold": float(self.threshold_spin.value()),
            "correction_threshold": float(self.correction_spin.value()),
        }

    def predictor_settings(self) -> PredictorSettings:
        s = self.settings()
        return PredictorSettings(
            s["source"], s["device"], s["zoom_in"], s["flip"], s["fit"], s["objects"]
        )

    def device_error(self) -> str | None:
        """Why the chosen device cannot be used (``None`` when it can); shows the CPU hint
        when clicks will run on the CPU."""
        try:
            device = resolve_device(self.device_combo.currentText())
        except ValueError as exc:
            self.cpu_hint.setVisible(True)
            return str(exc)
        self.cpu_hint.setVisible(device == "cpu")
        return None

    # ------------------------------------------------------------------ model picker
    def _changed(self, *args) -> None:
        if self._ready:
            self._on_predictor_change()

    def model_name(self) -> str | None:
        """The chosen built-in model's name (``None`` for a checkpoint or a provided model)."""
        kind, _, name = self.model_combo.currentData().partition(":")
        return name if kind == "builtin" else None

    def set_model(self, name: str) -> None:
        """Choose the built-in model ``name``."""
        index = self.model_combo.findData(f"builtin:{name}")
        if index < 0:
            raise ValueError(
                f"unknown built-in model {name!r}; choose one of {', '.join(builtin_names())}"
            )
        self.model_combo.setCurrentIndex(index)

    def _on_model_choice(self, index=None) -> None:
        name = self.model_name()
        if name is not None and name != self._presets_of:
            # another built-in model: its own kinds of object and validated thresholds
            self._presets_of, self._presets = name, builtin_thresholds(name)
            self._fill_objects(keep=self.objects_combo.currentData())
            self._set_spins(self._presets[self.objects_combo.currentData()])
            self._threshold_changed()
        checkpoint = self.model_combo.currentData() == "checkpoint"
        self.browse_button.setEnabled(checkpoint)
        if checkpoint and self._checkpoint:
            self.checkpoint_label.setText(self._checkpoint)
        elif checkpoint:
            self.checkpoint_label.setText("no checkpoint chosen: use Browse…")
        else:
            self.checkpoint_label.setText("")
        self._changed()

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._parent,
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
        self.model_combo.setCurrentIndex(self.model_combo.findData("checkpoint"))
        self._on_model_choice()
