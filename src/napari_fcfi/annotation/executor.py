"""Where the editor's background work runs: the :class:`Executor` protocol.

The editor hands an executor one :class:`Job` at a time and waits for it before it applies
the next command. ``job.work()`` does the network work (it may run on another thread and
must not touch labels or views); when it is a generator function, every item it yields is
passed to ``job.on_yield``. Then exactly one of ``job.on_done(result)`` or
``job.on_error(exception)`` follows. An executor calls ``on_yield``, ``on_done`` and
``on_error`` on the thread that owns the labels (the GUI thread in napari), in order.

:class:`InlineExecutor` runs each job at once, on the caller's thread (scripts, batch work,
tests).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


def _ignore(*_args) -> None:
    return None


@dataclass
class Job:
    """One piece of background work and what to do with its outcome."""

    work: Callable[[], Any]
    on_done: Callable[[Any], None] = _ignore
    on_error: Callable[[BaseException], None] = _ignore
    on_yield: Callable[[Any], None] = _ignore
    name: str = ""

    @property
    def is_generator(self) -> bool:
        return inspect.isgeneratorfunction(self.work)

    def run_here(self) -> None:
        """Run the work and deliver its outcome on this thread."""
        try:
            result = self.work()
            if inspect.isgenerator(result):
                while True:
                    try:
                        item = next(result)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    self.on_yield(item)
        except Exception as exc:  # every failure goes to the editor
            self.on_error(exc)
            return
        self.on_done(result)


class Executor(Protocol):
    """Runs :class:`Job` objects (see the module docstring for the contract)."""

    def submit(self, job: Job) -> None: ...


class InlineExecutor:
    """Runs every job at once, on the calling thread."""

    def submit(self, job: Job) -> None:
        job.run_here()
