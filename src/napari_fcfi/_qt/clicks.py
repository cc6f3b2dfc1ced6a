"""Click input: the "FCFI clicks" Points layer.

A point added to the layer (by a click on the canvas in click mode, by napari's own point
tool or by a script) is a click for the editor; :meth:`ClickInput.sync` redraws the layer
from the editor's clicks once every command has been applied, so the points always show
the current object's clicks and propagation stop markers. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _layers


class ClickInput:
    """The clicks layer of ``viewer`` on the grid of :attr:`image_layer`.

    ``on_click(coord, positive)`` receives each new point (clicks-layer data coordinates);
    ``enabled()`` says whether click mode is on; ``on_error(message)`` reports a click
    that cannot be used; ``on_polarity()`` follows changes of the default polarity;
    ``bind_keys(layer)`` adds the widget's shortcuts to a new layer.
    """

    def __init__(
        self,
        viewer,
        on_click: Callable,
        enabled: Callable[[], bool],
        on_error: Callable[[str], None],
        on_polarity: Callable[[], None],
        bind_keys: Callable,
    ):
        self.viewer = viewer
        self.image_layer = None
        self._on_click = on_click
        self._enabled = enabled
        self._on_error = on_error
        self._on_polarity = on_polarity
        self._bind_keys = bind_keys
        self._layer = None
        self._n_points = 0
        self._ignore = False

    # ------------------------------------------------------------------ the layer
    @property
    def current(self):
        """The clicks layer if it is in the viewer, else ``None``."""
        layer = self._layer
        return layer if layer is not None and layer in self.viewer.layers else None

    def owns(self, layer) -> bool:
        return layer is not None and layer is self._layer

    def ensure(self):
        """The clicks layer, created (and added to the viewer) on first use."""
        layer = self.current
        if layer is None:
            if self.image_layer is None:
                raise ValueError("no image layer: open an image and pick it in the widget")
            layer = _layers.make_clicks_layer(self.image_layer)
            layer.events.data.connect(self._on_data)
            layer.events.feature_defaults.connect(lambda event=None: self._on_polarity())
            layer.mouse_drag_callbacks.append(self._on_mouse_drag)
            self._bind_keys(layer)
            self._layer = layer
            self._n_points = 0
            self.viewer.add_layer(layer)
            self._on_polarity()
        return layer

    def forget(self) -> None:
        """The layer was removed from the viewer."""
        self._layer = None

    def remove(self) -> bool:
        """Remove the layer from the viewer (it lives on the old image's grid); returns
        whether there was one."""
        layer, self._layer = self.current, None
        if layer is None:
            return False
        self.viewer.layers.remove(layer)
        return True

    # ------------------------------------------------------------------ polarity
    @property
    def default_positive(self) -> bool:
        layer = self._layer
        return True if layer is None else bool(layer.feature_defaults["positive"].iloc[0])

    def toggle_polarity(self) -> bool:
        """Flip the default polarity of new clicks; returns the new default."""
        layer = self.ensure()
        new = not self.default_positive
        layer.feature_defaults = {"positive": new}
        self._on_polarity()
        return new

    # ------------------------------------------------------------------ input
    def add(self, coord, positive: bool | None = None) -> None:
        """Add a point at ``coord`` (clicks-layer data coordinates) with the given polarity
        (default: the layer's default polarity)."""
        layer = self.ensure()
        if positive is None:
            layer.add(coord)
            return
        old = layer.feature_defaults
        layer.feature_defaults = {"positive": bool(positive)}
        try:
            layer.add(coord)
        finally:
            layer.feature_defaults = old

    def _on_data(self, event) -> None:
        from napari.layers.base import ActionType

        layer = self._layer
        if layer is None:
            return
        start, self._n_points = self._n_points, len(layer.data)
        # only points appended since the last event are new clicks; rewrites of the layer
        # by sync() are not
        if event.action != ActionType.ADDED or self._ignore:
            return
        for i in range(start, len(layer.data)):
            self._on_click(layer.data[i], bool(layer.features["positive"].iloc[i]))

    def _on_mouse_drag(self, layer, event):
        """Click mode with the clicks layer selected: a click without drag adds a point
        (dragging still pans)."""
        if not self._enabled() or layer.mode != "pan_zoom":
            return
        yield from self._gesture(layer, event)

    def on_viewer_drag(self, viewer, event):
        """Click mode with another layer selected in pan/zoom mode (the labels after a hand
        edit, the image): a click still adds a point. A layer in a painting or other tool
        mode, and a 3-D view, keep the mouse to themselves; a single click (no drag) there
        is then explained, so that no click is dropped without a word."""
        if not self._enabled() or self.image_layer is None or viewer.dims.ndisplay != 2:
            return
        active = viewer.layers.selection.active
        if active is not None and self.owns(getattr(active, "__wrapped__", active)):
            return
        mode = str(getattr(active, "mode", "pan_zoom"))
        if mode != "pan_zoom":
            if event.button not in (1, 2):
                return
            if (yield from self._is_click(event)):
                self._on_error(
                    f"that click went to the layer '{active.name}' ({mode} mode), not to "
                    "FCFI: switch that layer to pan/zoom (the hand tool in its layer "
                    "controls) or select the image to click objects"
                )
            return
        yield from self._gesture(self.ensure(), event)

    @staticmethod
    def _is_click(event):
        """Follow a mouse gesture to its release; True when it did not drag."""
        start = np.asarray(event.pos, dtype=float)
        yield
        moved = False
        while event.type == "mouse_move":
            if np.hypot(*(np.asarray(event.pos, dtype=float) - start)) > 4:
                moved = True
            yield
        return not moved

    def _gesture(self, layer, event):
        if event.button not in (1, 2):
            return
        if self.viewer.dims.ndisplay != 2:
            self._on_error("switch the viewer to 2-D (Ctrl+Y) to click")
            return
        n = self.viewer.dims.ndim
        if sorted(self.viewer.dims.displayed) != [n - 2, n - 1]:
            self._on_error(
                "FCFI segments Y/X planes: transpose/roll the axes back so that Y, X are shown"
            )
            return
        if not (yield from self._is_click(event)):
            return
        default = bool(layer.feature_defaults["positive"].iloc[0])
        negative = event.button == 2 or "Control" in event.modifiers
        coord = layer.world_to_data(event.position)
        self.add(coord, (not default) if negative else default)

    # ------------------------------------------------------------------ display
    def sync(self, clicks) -> None:
        """Show ``clicks`` ``(key, y, x, positive)`` (image plane coordinates)."""
        layer = self.current
        if layer is None or self.image_layer is None:
            return
        rows = [(*key, y, x) for key, y, x, _ in clicks]
        flags = [bool(p) for *_, p in clicks]
        ndim = layer.ndim
        data = np.asarray(rows, dtype=float).reshape(-1, ndim)
        if len(data):
            world = np.array([self.image_layer.data_to_world(r) for r in data])
            data = np.array([layer.world_to_data(w) for w in world]).reshape(-1, ndim)
        old = layer.data
        old_flags = layer.features["positive"].to_numpy(dtype=bool)
        if old.shape == data.shape and np.allclose(old, data) and np.array_equal(old_flags, flags):
            return
        self._ignore = True
        try:
            defaults = layer.feature_defaults
            layer.selected_data = set()
            layer.data = data
            layer.features = {"positive": np.asarray(flags, dtype=bool)}
            layer.feature_defaults = defaults
            if hasattr(layer, "refresh_colors"):
                layer.refresh_colors()
        finally:
            self._ignore = False
            self._n_points = len(layer.data)
