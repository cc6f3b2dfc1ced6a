"""The napari and Qt side of the plugin: dock widgets, the Labels-layer store, the job
queue that runs network work off the GUI thread, click input and the settings panel.

The editing rules live in :mod:`napari_fcfi.annotation`, which knows nothing of napari or
Qt; this package turns layer and widget events into editor commands and shows the editor's
events.
"""
