"""The widget's labels file: where the labels are saved, atomically (GUI thread only)."""

from __future__ import annotations

from collections.abc import Callable

from ..annotation.autosave import save_labels


class LabelsOutput:
    """Saves a Labels layer to the path in ``edit`` (a QLineEdit) with
    :func:`~napari_fcfi.annotation.autosave.save_labels`; errors go to ``on_error``."""

    def __init__(self, parent, edit, on_error: Callable[[str], None]):
        self._parent = parent
        self._edit = edit
        self._on_error = on_error

    def set_path(self, path) -> None:
        self._edit.setText(str(path))

    def browse(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self._parent, "Labels file", "", "TIFF (*.tif *.tiff)"
        )
        if path:
            self.set_path(path)

    def save(self, labels_layer, quiet: bool = False) -> bool:
        """Write ``labels_layer.data``; returns whether it did. With ``quiet``, having no
        file or no layer yet is not an error."""
        text = self._edit.text().strip()
        if not text or labels_layer is None:
            if not quiet:
                self._on_error("choose a labels file under 'Save' first")
            return False
        try:
            save_labels(text, labels_layer.data)
        except (OSError, ValueError) as exc:
            self._on_error(f"labels not saved: {exc}")
            return False
        return True
