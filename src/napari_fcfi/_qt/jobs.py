"""A serial job queue: network work off the GUI thread, one job at a time, in order.

:class:`SerialJobQueue` is an :class:`~napari_fcfi.annotation.executor.Executor`: each
:class:`~napari_fcfi.annotation.executor.Job` runs in a napari ``thread_worker``; its
yields, result or error are delivered on the GUI thread, in order, and the next job starts
only after the previous one has finished. One queue can serve several widgets so that
their jobs never compete for the CPU.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..annotation.executor import Job


class SerialJobQueue:
    """Runs :class:`Job` objects one after the other in napari worker threads."""

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()
        self._worker = None
        self._current: Job | None = None
        #: called (GUI thread) whenever the last job has finished
        self.idle_callbacks: list[Callable[[], None]] = []

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        return self._worker is not None or bool(self._queue)

    @property
    def current(self) -> Job | None:
        """The job running now."""
        return self._current

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._start_next()

    def _start_next(self) -> None:
        from napari.qt.threading import thread_worker

        if self._worker is not None or not self._queue:
            return
        job = self._queue.popleft()
        state = {"ended": False}

        def end(handler, value) -> None:
            if not state["ended"]:
                state["ended"] = True
                handler(value)

        worker = thread_worker(
            job.work,
            start_thread=False,
            # replaces napari's default "re-raise in the GUI thread"
            connect={"errored": lambda exc: end(job.on_error, exc)},
        )()
        if job.is_generator:
            worker.yielded.connect(job.on_yield)
            # a generator worker that was quit emits `aborted` instead of `returned`
            worker.aborted.connect(lambda: end(job.on_done, None))
        worker.returned.connect(lambda result: end(job.on_done, result))
        worker.finished.connect(self._finished)
        self._worker, self._current = worker, job
        worker.start()

    def _finished(self) -> None:
        self._worker = None
        self._current = None
        self._start_next()
        if not self.busy:
            for callback in list(self.idle_callbacks):
                callback()

    def wait(self, timeout: float = 30.0) -> None:
        """Process Qt events until no job runs or waits (for scripts and tests)."""
        process_events_while(lambda: self.busy, timeout)


def process_events_while(busy, timeout: float = 30.0) -> None:
    """Process Qt events while ``busy()`` is true; ``TimeoutError`` after ``timeout`` s."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while busy():
        if time.monotonic() > end:
            raise TimeoutError("FCFI jobs still running")
        QApplication.processEvents()
        time.sleep(0.002)
