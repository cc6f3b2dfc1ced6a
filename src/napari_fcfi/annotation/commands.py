"""The user's commands, as the editor records them.

A command holds everything that was known when the user gave it (the slice on screen, the
"allow overwriting" choice); what depends on earlier commands (which object a click
belongs to, the feedback read back from the labels) is decided when the command is
applied, after every earlier command has been applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from .planes import SliceKey
from .predictors import PredictorSettings


@dataclass(frozen=True)
class Click:
    """A click at pixel ``(y, x)`` of plane ``key``; ``positive`` adds, negative removes."""

    key: SliceKey
    y: int
    x: int
    positive: bool
    overwrite: bool


@dataclass(frozen=True)
class Finish:
    """Finish the object; the next click starts a new one."""


@dataclass(frozen=True)
class Undo:
    """Undo the last propagation, else the last click of the object on plane ``key``."""

    key: SliceKey
    overwrite: bool


@dataclass(frozen=True)
class Redo:
    """Redo what :class:`Undo` undid last."""

    key: SliceKey
    overwrite: bool


@dataclass(frozen=True)
class Reset:
    """Put the object's pixels back to what they were before it was started."""


@dataclass(frozen=True)
class Propagate:
    """Carry the object from plane ``key`` through the stack (last stack axis)."""

    key: SliceKey
    iou_threshold: float
    overwrite: bool


@dataclass(frozen=True)
class SetThreshold:
    """Binarise the first click's answer at ``threshold`` and the later answers at
    ``correction_threshold`` (None: ``threshold``); the object on plane ``key`` is redrawn."""

    key: SliceKey
    threshold: float
    overwrite: bool
    correction_threshold: float | None = None


@dataclass(frozen=True)
class Configure:
    """Use other predictor settings from the next click on (click histories restart from
    the object's current pixels)."""

    settings: PredictorSettings


Command = Click | Finish | Undo | Redo | Reset | Propagate | SetThreshold | Configure
