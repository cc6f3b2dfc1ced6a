"""What the editor knows: the labels and image it edits, the object being edited and, per
plane, that object's click history."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .planes import Rect, SliceKey, rect_contains, reframe


@dataclass
class SliceState:
    """The object on one plane, within the rectangle ``rect`` of that plane around it.

    ``before``: the labels in ``rect`` when the editor first looked there (what a reset
    restores); ``written``: the object's mask in ``rect`` as the editor last wrote or read
    it back (a difference from the labels is a hand edit); ``session``: the click history
    there (an :class:`~napari_fcfi.inference.session.InteractiveSession`, ``None`` until
    the next click starts one from the object's current pixels). ``masks`` holds the mask
    the editor wrote at each step of that history (with the rect it covers) and
    ``position`` the current step, so undo and redo put back exactly what was written then.

    ``rect`` only grows (:meth:`grow`): it is the whole plane on images of ordinary size,
    and the object's neighbourhood on very large ones.
    """

    rect: Rect
    before: np.ndarray
    written: np.ndarray
    session: Any = None
    masks: list[tuple[Rect, np.ndarray]] = field(default_factory=list)
    position: int = 0

    @property
    def clicks(self) -> list[tuple[int, int, bool]]:
        return [] if self.session is None else list(self.session.clicks)

    def grow(self, rect: Rect, labels: np.ndarray) -> None:
        """Extend ``rect`` to ``rect``, given the current ``labels`` there (``rect`` must
        contain the current one): the new pixels' ``before`` is what they hold now, and the
        object is not written there yet."""
        if rect == self.rect:
            return
        if not rect_contains(rect, self.rect):
            raise ValueError(f"rect {rect} does not contain {self.rect}")
        before = np.array(labels, copy=True)
        oy, ox = self.rect[0] - rect[0], self.rect[2] - rect[2]
        h, w = self.before.shape
        before[oy : oy + h, ox : ox + w] = self.before
        self.before = before
        self.written = reframe(self.written, self.rect, rect, False)
        self.rect = rect

    def begin(self, session, start: np.ndarray) -> None:
        """A new click history that starts from the object's mask ``start`` (in ``rect``)."""
        self.session = session
        self.masks = [(self.rect, start.copy())]
        self.position = 0

    def drop_history(self) -> None:
        """Forget the click history; the next click starts one from the labels."""
        self.session = None
        self.masks = []
        self.position = 0

    def push(self, mask: np.ndarray) -> None:
        """A new step of the history wrote ``mask`` (in ``rect``; steps after an undo are
        dropped)."""
        del self.masks[self.position + 1 :]
        self.masks.append((self.rect, mask.copy()))
        self.position = len(self.masks) - 1

    def move(self, undo: bool) -> tuple[Rect, np.ndarray]:
        """Step the history back (or forward); returns the mask written at that step, with
        its rect."""
        self.position += -1 if undo else 1
        return self.masks[self.position]


@dataclass
class PropagationRecord:
    """The last propagation of the object, undone and redone as one step: the planes
    before it and after it."""

    object_id: int
    before: dict[SliceKey, np.ndarray]
    after: dict[SliceKey, np.ndarray]
    undone: bool = False


@dataclass
class ObjectState:
    """The object being edited: ``object_id``, its planes, its propagation stop markers
    (negative clicks where the object is absent) and its last propagation."""

    object_id: int
    slices: dict[SliceKey, SliceState] = field(default_factory=dict)
    stops: list[tuple[SliceKey, int, int]] = field(default_factory=list)
    propagation: PropagationRecord | None = None

    def clicks(self) -> list[tuple[SliceKey, int, int, bool]]:
        """Every click of the object, plane by plane, then the stop markers (negative)."""
        out = [(k, y, x, bool(p)) for k, s in self.slices.items() for y, x, p in s.clicks]
        out += [(k, y, x, False) for k, y, x in self.stops]
        return out


@dataclass
class EditorState:
    """The state every command is applied against.

    ``store`` and ``read_image`` (plane ``key`` of the image) are what is edited, ``shape``
    the image's ``(*stack_axes, Y, X)``; ``object`` the object being edited; ``settings``,
    ``threshold`` and ``correction_threshold`` (None: ``threshold``) the predictor settings
    of the commands applied so far; ``run`` the
    running propagation (``None`` when none runs) and ``cancel`` its stop request.
    """

    settings: Any
    threshold: float
    correction_threshold: float | None = None
    store: Any = None
    read_image: Callable | None = None
    shape: tuple[int, ...] = ()
    object: ObjectState | None = None
    run: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def object_id(self) -> int | None:
        return None if self.object is None else self.object.object_id

    def require_store(self):
        if self.store is None:
            raise ValueError("no labels to edit: open an image first")
        return self.store

    def next_id(self) -> int:
        """One more than the largest label (1 without labels)."""
        return 1 if self.store is None else self.store.max_label() + 1
