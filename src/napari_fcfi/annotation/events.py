"""What the editor reports: event types and a small emitter.

A view subscribes with ``editor.events.connect(callback)``; every callback receives each
event object, in the order the editor emits them, on the thread that applies commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectChanged:
    """The object being edited changed: ``object_id`` is ``None`` after a finish (the next
    click starts a new object, ``next_id`` unless it lands inside an existing label)."""

    object_id: int | None
    next_id: int


@dataclass(frozen=True)
class ClicksChanged:
    """The clicks of the current object (or its stop markers) changed."""


@dataclass(frozen=True)
class LabelsChanged:
    """Label planes ``keys`` were written."""

    keys: tuple


@dataclass(frozen=True)
class Status:
    """A message for the user about the last command."""

    message: str


@dataclass(frozen=True)
class Error:
    """A command could not be carried out; the labels are as they were before it."""

    message: str


@dataclass(frozen=True)
class Progress:
    """A propagation's progress: ``done`` of at most ``total`` slices; ``running`` is False
    once it has ended."""

    done: int
    total: int
    running: bool


@dataclass(frozen=True)
class Idle:
    """Every command given so far has been applied."""


class Events:
    """A list of callbacks that receive every event."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, event) -> None:
        for callback in list(self._callbacks):
            callback(event)
