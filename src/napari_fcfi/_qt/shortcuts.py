"""The keyboard shortcuts of the interactive widget."""

from __future__ import annotations

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


def help_text() -> str:
    return "Shortcuts\n" + "\n".join(f"{k}: {d}" for k, (_, d) in SHORTCUTS.items())


def bind_shortcuts(target, owner) -> None:
    """Bind every shortcut on ``target`` (the viewer or a layer) to ``owner``'s action."""
    for key, (action, _) in SHORTCUTS.items():

        def callback(_target=None, _action=action):
            try:
                getattr(owner, _action)()
            except RuntimeError:  # the widget was closed and deleted by Qt
                pass

        target.bind_key(key, callback, overwrite=True)
