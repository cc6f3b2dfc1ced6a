"""The "Clicks" and "Stack" groups of the interactive widget."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)


def clicks_box(owner) -> QGroupBox:
    """Click mode, the default polarity and the object buttons; the controls become
    attributes of ``owner`` (the widget), whose actions they call."""
    clicks_box = QGroupBox("Clicks")
    box = QVBoxLayout(clicks_box)
    owner.click_mode_check = QCheckBox("Click mode (left: positive, right/Ctrl: negative)")
    box.addWidget(owner.click_mode_check)
    owner.polarity_label = QLabel()
    box.addWidget(owner.polarity_label)
    for pair in (
        (("Undo [U]", owner.undo), ("Redo [Shift+U]", owner.redo)),
        (("Reset object [Shift+R]", owner.reset_object), ("Finish object [N]", None)),
    ):
        row = QHBoxLayout()
        for text, slot in pair:
            button = QPushButton(text)
            button.clicked.connect(slot or owner.finish_object)
            row.addWidget(button)
        box.addLayout(row)
    return clicks_box


def stack_box(owner) -> QGroupBox:
    """The propagation controls (IoU stop, propagate, progress, cancel)."""
    stack_box = QGroupBox("Stack")
    form = QFormLayout(stack_box)
    owner.iou_spin = QDoubleSpinBox()
    owner.iou_spin.setRange(0.0, 1.0)
    owner.iou_spin.setSingleStep(0.05)
    owner.iou_spin.setValue(0.5)
    form.addRow("Stop below IoU", owner.iou_spin)
    owner.propagate_button = QPushButton("Propagate through stack [G]")
    owner.propagate_button.clicked.connect(owner.propagate)
    form.addRow(owner.propagate_button)
    owner.progress = QProgressBar()
    owner.progress.setVisible(False)
    owner.cancel_button = QPushButton("Cancel")
    owner.cancel_button.setVisible(False)
    owner.cancel_button.clicked.connect(owner.cancel_propagation)
    row = QHBoxLayout()
    row.addWidget(owner.progress, 1)
    row.addWidget(owner.cancel_button)
    form.addRow(row)
    return stack_box
