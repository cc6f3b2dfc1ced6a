"""The status and error lines of the interactive widget."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel


class StatusView:
    """A status line (the current object, its slices, whether work is running, the last
    message) and an error line that also shows a napari notification."""

    def __init__(self, layout) -> None:
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff5050;")
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.error_label)
        self.message = ""
        self.last_error: str | None = None

    def show_error(self, message: str) -> None:
        self.last_error = message
        self.error_label.setText(message)
        try:
            from napari.utils.notifications import show_warning

            show_warning(f"FCFI: {message}")
        except Exception:  # pragma: no cover - notifications are best effort
            pass

    def clear_error(self) -> None:
        self.last_error = None
        self.error_label.setText("")

    def show(self, object_id: int | None, slices: int, busy: bool, click_mode: bool) -> None:
        if object_id is not None:
            parts = [f"object: {object_id}"]
        elif click_mode:
            parts = ["object: none (click a cell)"]
        else:
            parts = ["object: none (tick Click mode, then click a cell)"]
        if slices:
            parts.append(f"slices: {slices}")
        if busy:
            parts.append("working…")
        text = " | ".join(parts)
        self.status_label.setText(text + (f"\n{self.message}" if self.message else ""))
