"""Commands applied one after the other, with only the network work in the background.

:class:`Sequencer` keeps the commands not yet applied in a queue. It applies the first one
(on the caller's thread); when that command needs network work it hands a
:class:`~napari_fcfi.annotation.executor.Job` to :meth:`Sequencer.start`, and the next
command waits until the job's outcome has been applied. So the commands take effect in the
order they were given, each against the state every earlier command left, however fast
they arrive and however long the network takes.

:meth:`Sequencer.forget` drops the waiting commands and turns the running job's outcome
away when it arrives (used when the labels being edited go away).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .executor import Executor, Job


class Sequencer:
    """Applies commands in order through ``apply(command)``.

    ``apply`` may call :meth:`start` once to wait for background work. A ``ValueError``
    raised by ``apply`` or by a job's outcome handler goes to ``on_error(message)`` and the
    next command follows; ``on_idle()`` is called whenever nothing is left to do.
    """

    def __init__(
        self,
        executor: Executor,
        apply: Callable[[object], None],
        on_error: Callable[[str], None],
        on_idle: Callable[[], None],
    ):
        self.executor = executor
        self._apply = apply
        self._on_error = on_error
        self._on_idle = on_idle
        self._pending: deque = deque()
        self._job: Job | None = None
        self._generation = 0
        self._draining = False

    @property
    def busy(self) -> bool:
        """True while commands wait or a job runs."""
        return self._job is not None or bool(self._pending)

    @property
    def job(self) -> Job | None:
        """The job whose outcome the next command waits for."""
        return self._job

    def submit(self, command) -> None:
        """Queue ``command``; it is applied at once when nothing is waiting."""
        self._pending.append(command)
        self._drain()

    def forget(self) -> None:
        """Drop the waiting commands; the running job's outcome will be ignored."""
        self._generation += 1
        self._pending.clear()
        self._job = None

    def start(self, job: Job) -> None:
        """Run ``job`` in the background; its outcome is applied before the next command."""
        if self._job is not None:
            raise RuntimeError("a command may start one job at a time")
        generation = self._generation
        on_yield, on_done, on_error = job.on_yield, job.on_done, job.on_error

        def wanted() -> bool:
            return generation == self._generation

        def yielded(item) -> None:
            if wanted():
                on_yield(item)

        def ended(handler, value) -> None:
            if not wanted():
                return  # forgotten meanwhile: nobody wants this outcome
            self._job = None
            try:
                handler(value)
            except ValueError as exc:
                self._on_error(str(exc))
            finally:
                self._drain()

        job.on_yield = yielded
        job.on_done = lambda result: ended(on_done, result)
        job.on_error = lambda exc: ended(on_error, exc)
        self._job = job
        self.executor.submit(job)

    def _drain(self) -> None:
        if self._draining:
            return  # called back from inside a command: the loop below carries on
        self._draining = True
        try:
            while self._job is None and self._pending:
                command = self._pending.popleft()
                try:
                    self._apply(command)
                except ValueError as exc:
                    self._on_error(str(exc))
        finally:
            self._draining = False
        if not self.busy:
            self._on_idle()
