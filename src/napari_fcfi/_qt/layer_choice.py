"""The image and output-labels pickers of the interactive widget.

:class:`LayerChoice` follows the viewer's layers: it lists the Image and Labels layers,
notices when the chosen ones are removed, refuses labels whose shape does not fit the image
and creates a new "FCFI labels" layer when the user has not picked one. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QComboBox, QFormLayout

from .. import _layers

NEW_LABELS = "<new FCFI labels>"


class LayerChoice:
    """The "Image" and "Output labels" rows of ``form``.

    ``on_change()`` is called when the chosen image or labels change or go away (work in
    flight for them must not land); ``on_image(layer)`` when the image changes;
    ``bind_keys(layer)`` for every labels layer chosen or created.
    """

    def __init__(
        self,
        viewer,
        form: QFormLayout,
        on_change: Callable[[], None],
        on_image: Callable,
        bind_keys: Callable,
    ):
        self.viewer = viewer
        self.image = None
        self.labels = None
        self._on_change = on_change
        self._on_image = on_image
        self._bind_keys = bind_keys
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.image_combo.currentIndexChanged.connect(self._on_image_choice)
        self.labels_combo.currentIndexChanged.connect(self._on_labels_choice)
        form.addRow("Image", self.image_combo)
        form.addRow("Output labels", self.labels_combo)

    def refresh(self, event=None) -> None:
        """List the viewer's layers again (keeping the choices that are still there)."""
        from napari.layers import Image, Labels

        def fill(combo, names, keep):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if keep in names:
                combo.setCurrentIndex(names.index(keep))
            combo.blockSignals(False)

        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image)]
        fill(self.image_combo, images, self.image.name if self.image is not None else None)
        labels = [NEW_LABELS] + [ly.name for ly in self.viewer.layers if isinstance(ly, Labels)]
        keep = self.labels.name if self.labels is not None else NEW_LABELS
        fill(self.labels_combo, labels, keep)
        if self.image is None or self.image not in self.viewer.layers:
            self._on_image_choice()

    def _on_image_choice(self, index=None) -> None:
        name = self.image_combo.currentText()
        layer = _layers.unwrap(self.viewer.layers[name]) if name in self.viewer.layers else None
        if layer is self.image:
            return
        self._on_change()
        self.image = layer
        self._on_image(layer)
        if self.labels is not None and layer is not None:
            try:
                _layers.check_labels_match(layer, self.labels)
            except ValueError:
                self.labels = None
                self.labels_combo.setCurrentIndex(0)

    def _on_labels_choice(self, index=None) -> None:
        name = self.labels_combo.currentText()
        layer = (
            None
            if name == NEW_LABELS or name not in self.viewer.layers
            else _layers.unwrap(self.viewer.layers[name])
        )
        if layer is not self.labels:
            self._on_change()
            self.labels = layer
            if layer is not None:
                self._bind_keys(layer)

    def removed(self, layer) -> None:
        """``layer`` left the viewer."""
        if layer is self.image or layer is self.labels:
            self._on_change()  # results still in flight for these layers are dropped
            if layer is self.image:
                self.image = None
                self._on_image(None)
            else:
                self.labels = None
        self.refresh()

    def ensure(self):
        """The chosen image and labels layers; a new labels layer when none is chosen.
        ``ValueError`` when there is no image or the labels do not fit it."""
        image = self.image
        if image is None or image not in self.viewer.layers:
            raise ValueError("no image layer: open an image and pick it in the widget")
        labels = self.labels
        if labels is None or labels not in self.viewer.layers:
            labels = _layers.make_labels_layer(image)
            self.viewer.add_layer(labels)
            self.labels = labels
            self._bind_keys(labels)
            self.refresh()
        _layers.check_labels_match(image, labels)
        return image, labels
