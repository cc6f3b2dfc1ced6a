"""Where the labels live: the :class:`LabelStore` protocol and an in-memory store.

The editor touches labels only through a store, one 2-D plane, or one rectangle of a plane,
at a time: a click reads and writes the rectangle around its object
(:meth:`~LabelStore.read_region`, :meth:`~LabelStore.write_region`), so its cost does not
grow with the image. A store keeps an undo history: each write is one step, and the writes
inside ``with store.group():`` are one step together. :meth:`~LabelStore.preview_plane` shows a
plane without recording it (a propagation shows its slices as they arrive and records
them as one step at the end).

:class:`ArrayLabelStore` keeps the labels in a NumPy array with its own undo history; it
serves scripts, batch work and tests. The napari plugin has a store over a Labels layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, runtime_checkable

import numpy as np

from .planes import Rect, SliceKey, full_rect, rect_slices


@runtime_checkable
class LabelStore(Protocol):
    """Read and write 2-D label planes, with undo steps."""

    def read_plane(self, key: SliceKey) -> np.ndarray:
        """A copy of plane ``key`` (the caller may modify it)."""
        ...

    def write_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        """Make plane ``key`` equal ``plane``; recorded as one undo step unless inside
        :meth:`group`. Writing an unchanged plane records nothing."""
        ...

    def read_region(self, key: SliceKey, rect: Rect) -> np.ndarray:
        """A copy of the rectangle ``rect`` of plane ``key``."""
        ...

    def write_region(self, key: SliceKey, rect: Rect, values: np.ndarray) -> None:
        """Make the rectangle ``rect`` of plane ``key`` equal ``values``; one undo step
        unless inside :meth:`group`; nothing is recorded when nothing changes. Pixels
        outside ``rect`` are not touched."""
        ...

    def group(self) -> AbstractContextManager:
        """A context in which all writes form one undo step."""
        ...

    def preview_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        """Show ``plane`` at ``key`` without recording an undo step."""
        ...

    def max_label(self) -> int:
        """The largest label in the whole volume (0 when empty)."""
        ...


class ArrayLabelStore:
    """A :class:`LabelStore` over a NumPy array (``data``), with undo and redo.

    The array is used as given (not copied); planes are ``data[key]``.
    """

    def __init__(self, data: np.ndarray):
        data = np.asarray(data)
        if data.ndim < 2 or not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"labels must be an integer array of 2 or more axes, got {data.dtype}")
        self.data = data
        # changes: (index into data, old values, new values)
        self._undo: list[list[tuple[tuple, np.ndarray, np.ndarray]]] = []
        self._redo: list[list[tuple[tuple, np.ndarray, np.ndarray]]] = []
        self._open: list[tuple[tuple, np.ndarray, np.ndarray]] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    def read_plane(self, key: SliceKey) -> np.ndarray:
        return np.array(self.data[tuple(key)], copy=True)

    def read_region(self, key: SliceKey, rect: Rect) -> np.ndarray:
        return np.array(self.data[tuple(key) + rect_slices(rect)], copy=True)

    def write_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        self.write_region(key, full_rect(self.data.shape), plane)

    def write_region(self, key: SliceKey, rect: Rect, values: np.ndarray) -> None:
        index = tuple(key) + rect_slices(rect)
        old = np.array(self.data[index], copy=True)
        new = np.asarray(values, dtype=self.data.dtype)
        if new.shape != old.shape:
            raise ValueError(f"region shape {new.shape} does not match {old.shape}")
        if np.array_equal(old, new):
            return
        self.data[index] = new
        change = (index, old, new.copy())
        if self._open is not None:
            self._open.append(change)
        else:
            self._record([change])

    @contextmanager
    def group(self) -> Iterator[None]:
        if self._open is not None:  # nested: part of the outer step
            yield
            return
        self._open = []
        try:
            yield
        finally:
            changes, self._open = self._open, None
            if changes:
                self._record(changes)

    def preview_plane(self, key: SliceKey, plane: np.ndarray) -> None:
        self.data[tuple(key)] = plane

    def max_label(self) -> int:
        return int(self.data.max()) if self.data.size else 0

    # ------------------------------------------------------------------ history
    def _record(self, changes) -> None:
        self._undo.append(changes)
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Undo the last step; returns False when there is none."""
        if not self._undo:
            return False
        changes = self._undo.pop()
        for key, old, _ in reversed(changes):
            self.data[key] = old
        self._redo.append(changes)
        return True

    def redo(self) -> bool:
        """Redo the step undone last; returns False when there is none."""
        if not self._redo:
            return False
        changes = self._redo.pop()
        for key, _, new in changes:
            self.data[key] = new
        self._undo.append(changes)
        return True
