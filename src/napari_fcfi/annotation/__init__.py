"""The annotation editor: the editing rules of click-based segmentation, without a GUI.

:class:`~napari_fcfi.annotation.editor.AnnotationEditor` turns the user's commands (click,
finish, undo, redo, reset, propagate, threshold and model settings) into label edits.
Commands are applied strictly in the order they were given, against the editor's own
state; only the network's work runs in the background, and its results are applied in that
same order. A sequence of commands therefore gives the same labels whether it is typed
slowly or all at once.

The editor reads and writes labels through a
:class:`~napari_fcfi.annotation.store.LabelStore` (a napari Labels layer in the plugin, a
NumPy array in scripts and tests) and reports what happened through events; it never
calls into a view. Nothing in this package imports napari or Qt.

Modules: :mod:`.editor` (the commands), :mod:`.sequencer` (their order),
:mod:`.rules` (what each command does), :mod:`.objects` (the state they act on),
:mod:`.propagation` (carrying an object through a stack), :mod:`.store` (label stores),
:mod:`.planes` (plane edits), :mod:`.predictors` (predictor settings and cache),
:mod:`.executor` (where the network work runs), :mod:`.commands` and :mod:`.events`.
"""
