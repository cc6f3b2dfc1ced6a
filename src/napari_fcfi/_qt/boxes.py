"""The "Clicks", "Stack" and "Save" groups of the interactive widget."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
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


def scrolling_layout(owner) -> QVBoxLayout:
    """A vertical layout for ``owner``'s controls inside a frameless scroll area, so that
    the dock never forces the window taller than the screen (it scrolls instead)."""
    from qtpy.QtWidgets import QFrame, QScrollArea, QWidget

    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    inner = QWidget()
    scroll.setWidget(inner)
    outer.addWidget(scroll)
    return QVBoxLayout(inner)


def collapsible(title: str, layout, expanded: bool = False):
    """A section titled ``title`` holding ``layout`` that the user can fold away
    (superqt's QCollapsible, which napari itself uses)."""
    from qtpy.QtWidgets import QWidget
    from superqt import QCollapsible

    section = QCollapsible(title)
    inner = QWidget()
    inner.setLayout(layout)
    section.addWidget(inner)
    if expanded:
        section.expand(animate=False)
    else:
        section.collapse(animate=False)
    return section


def save_box(owner) -> QGroupBox:
    """The labels file and its autosave: ``owner.output_edit`` (the path),
    ``owner.autosave_check`` and a Browse button that calls ``owner.browse_output``."""
    box = QGroupBox("Save")
    form = QFormLayout(box)
    owner.output_edit = QLineEdit()
    owner.output_edit.setPlaceholderText("labels file (.tif)")
    owner.output_edit.setToolTip("the labels layer is saved here (atomically: never half-written)")
    browse = QPushButton("Browse…")
    browse.clicked.connect(owner.browse_output)
    row = QHBoxLayout()
    row.addWidget(owner.output_edit, 1)
    row.addWidget(browse)
    form.addRow("File", row)
    owner.autosave_check = QCheckBox("Save each time an object is finished")
    owner.autosave_check.setChecked(True)
    form.addRow(owner.autosave_check)
    return box
