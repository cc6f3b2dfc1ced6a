"""The "Refine labels (FCFI)" dock widget: refine every object of every slice at once.

"Refine all slices" runs :func:`napari_fcfi.stack.refine.iter_refine` on the chosen Image
and Labels layers in a napari ``thread_worker`` (the GUI stays responsive), with a napari
progress bar and a Cancel button. Finished slices are collected and written to the
Labels layer in **one** napari undo step when the run ends, finishes or is cancelled --
only slices that were finished, and only if the user did not edit that slice in the
meantime (such a slice is skipped and reported). Ctrl+Z on the Labels layer undoes the
whole refinement.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ._layers import history_group, set_plane
from ._qt.boxes import collapsible, scrolling_layout
from ._qt.settings_panel import builtin_label
from .model.catalogue import builtin_names
from .stack.options import RefineOptions

if TYPE_CHECKING:
    import napari.viewer

DEFAULTS = RefineOptions()


class _PlaneSnapshot:
    """Array-like over a Labels layer's data that copies every plane it hands out.

    The worker reads planes through it (so the GUI may keep editing the layer), and the
    copies are what a finished slice is compared against before it is written.
    """

    def __init__(self, data):
        self._data = data
        self.shape = tuple(data.shape)
        self.dtype = data.dtype
        self.ndim = len(self.shape)
        self.planes: dict = {}

    def __getitem__(self, index):
        plane = np.array(self._data[index], copy=True)
        self.planes[tuple(index)] = plane
        return plane


class RefineWidget(QWidget):
    """Dock widget running batch FCFI refinement on an Image + Labels layer pair.

    ``model`` is an FCFI network (or None: the built-in model chosen in the widget, loaded
    on first use).
    Scripting/tests: :meth:`refine_all` starts a run and returns the worker,
    :meth:`cancel` stops it; :attr:`report` holds the object reports of the last run and
    :attr:`skipped` the slices not written because they were edited meanwhile.
    """

    def __init__(self, viewer: napari.viewer.Viewer, model=None):
        super().__init__()
        self.viewer = viewer
        self._model = model
        self._predictor = None
        self._predictor_of: str | None = None  # the built-in model behind _predictor
        self._worker = None
        self._abort = threading.Event()
        self._results: dict = {}
        self._snapshot: _PlaneSnapshot | None = None
        self._progress = None
        self._in_slice = False
        self.report: list = []
        self.skipped: list = []

        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.model_combo = QComboBox()
        for name in builtin_names():
            self.model_combo.addItem(builtin_label(name), name)
        self.model_combo.setToolTip("the built-in model that refines the labels")
        self.min_size = QSpinBox()
        self.min_size.setRange(0, 10**6)
        self.min_size.setValue(DEFAULTS.min_size)
        self.min_size.setToolTip("objects smaller than this (pixels) are kept as they are")
        self.extra_clicks = QSpinBox()
        self.extra_clicks.setRange(0, 5)
        self.extra_clicks.setValue(DEFAULTS.extra_clicks)
        self.extra_clicks.setToolTip(
            "corrective clicks where the refined and the current mask disagree strongly"
        )
        self.click_distance = QDoubleSpinBox()
        self.click_distance.setRange(1.0, 100.0)
        self.click_distance.setValue(DEFAULTS.click_distance)
        self.click_distance.setToolTip("a disagreement this deep (px) gets a corrective click")
        self.margin = QDoubleSpinBox()
        self.margin.setRange(0.0, 0.49)
        self.margin.setSingleStep(0.05)
        self.margin.setValue(DEFAULTS.margin)
        self.margin.setToolTip(
            "a pixel changes only where the probability is this far past the threshold"
        )
        self.run_button = QPushButton("Refine all slices")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Labels", self.labels_combo)
        if model is None:  # a model handed to the widget is used as it is
            form.addRow("Model", self.model_combo)
        # the rule options fold away: the defaults are the validated ones
        options = QFormLayout()
        options.addRow("Min. object size", self.min_size)
        options.addRow("Extra clicks", self.extra_clicks)
        options.addRow("Click distance", self.click_distance)
        options.addRow("Margin", self.margin)
        self.options_section = collapsible("Options", options)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.options_section)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.run_button.clicked.connect(lambda: self.refine_all())
        self.cancel_button.clicked.connect(self.cancel)
        events = viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._refresh_layers)
        viewer.layers.selection.events.active.connect(self._refresh_layers)
        self._refresh_layers()

    # ----------------------------------------------------------------------- layers
    def _refresh_layers(self, event=None):
        from napari.layers import Image, Labels

        active = self.viewer.layers.selection.active
        for combo, kind in ((self.image_combo, Image), (self.labels_combo, Labels)):
            names = [ly.name for ly in self.viewer.layers if isinstance(ly, kind)]
            current = combo.currentText()
            if isinstance(active, kind):
                current = active.name
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)

    def _layer(self, combo, what):
        name = combo.currentText()
        if not name or name not in self.viewer.layers:
            raise ValueError(f"choose a{'n' if what == 'image' else ''} {what} layer")
        return self.viewer.layers[name]

    @property
    def running(self) -> bool:
        return self._worker is not None

    # -------------------------------------------------------------------------- run
    def refine_all(self, image_layer=None, labels_layer=None):
        """Start refining every slice; returns the napari worker (None if it cannot start)."""
        from napari.qt.threading import thread_worker
        from napari.utils import progress

        from .stack.refine import RefineCancelled, iter_refine, slice_indices, split_channels

        if self.running:
            self.status.setText("A refinement is already running.")
            return None
        try:
            image_layer = image_layer or self._layer(self.image_combo, "image")
            labels_layer = labels_layer or self._layer(self.labels_combo, "labels")
            image = image_layer.data[0] if image_layer.multiscale else image_layer.data
            labels = labels_layer.data
            split_channels(image.shape, labels.shape)
            total = len(slice_indices(labels.shape))
        except ValueError as exc:
            self.status.setText(str(exc))
            return None

        self._abort.clear()
        self._results = {}
        self._snapshot = _PlaneSnapshot(labels)
        self._labels_layer = labels_layer
        options = RefineOptions.of(
            DEFAULTS,
            min_size=self.min_size.value(),
            extra_clicks=self.extra_clicks.value(),
            click_distance=self.click_distance.value(),
            margin=self.margin.value(),
        )
        snapshot, abort = self._snapshot, self._abort
        model_name = self.model_combo.currentData()

        @thread_worker
        def work():
            predictor = self._get_predictor(model_name)
            try:
                yield from iter_refine(image, snapshot, predictor, options, cancel=abort.is_set)
            except RefineCancelled:
                return "cancelled"
            return "done"

        self._progress = progress(total=total, desc="Refining slices")
        worker = work()
        worker.yielded.connect(self._on_slice)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._outcome = "done"
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Refining {total} slice(s)…")
        worker.start()
        return worker

    def cancel(self):
        """Stop after the current network batch; finished slices are still written."""
        if self.running:
            self._abort.set()
            self.status.setText("Cancelling…")

    def _get_predictor(self, model_name: str | None = None):
        """The refinement predictor: of the model handed to the widget, else of the
        built-in model ``model_name`` (loaded once, again only when the choice changes)."""
        if self._model is not None:
            model_name = None
        if self._predictor is None or self._predictor_of != model_name:
            from .stack.refine import default_predictor

            model = self._model
            if model is None:
                from .model.io import load_model

                model = load_model(model_name)
            self._predictor = default_predictor(model)
            self._predictor_of = model_name
        return self._predictor

    # ------------------------------------------------------------- worker callbacks
    # napari's progress bar calls QApplication.processEvents(), so the worker's next
    # signals (finished included) can be delivered *inside* these handlers: they update
    # their state first and touch the progress bar last, and _on_finished defers itself
    # when it arrives in the middle of _on_slice.
    def _on_slice(self, item):
        if self._worker is None:
            return
        index, refined, report = item
        self._results[tuple(index)] = (refined, report)
        self.status.setText(f"Refined {len(self._results)} slice(s)…")
        if self._progress is not None:
            self._in_slice = True
            try:
                self._progress.update(1)
            finally:
                self._in_slice = False

    def _on_returned(self, outcome):
        self._outcome = outcome

    def _on_error(self, exc):
        self._outcome = f"failed: {exc}"

    def _on_finished(self):
        """Write all finished slices in one undo step (GUI thread)."""
        if self._in_slice:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self._on_finished)
            return
        layer, snapshot = self._labels_layer, self._snapshot
        written, self.skipped, self.report = 0, [], []
        if layer in self.viewer.layers and self._results:
            with history_group(layer):
                for index, (refined, report) in sorted(self._results.items()):
                    current = np.asarray(layer.data[index])
                    if not np.array_equal(current, snapshot.planes[index]):
                        self.skipped.append(index)  # edited by the user meanwhile
                        continue
                    set_plane(layer, index, refined)
                    self.report.extend(report)
                    written += 1
            layer.refresh()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        changed = sum(r.changed_pixels for r in self.report)
        msg = f"Refinement {self._outcome}: {written} slice(s) written, {changed} pixels changed"
        if self.skipped:
            msg += f"; {len(self.skipped)} slice(s) edited meanwhile were not written"
        self.status.setText(msg + ".")
        self._worker = None
        self._results = {}
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
