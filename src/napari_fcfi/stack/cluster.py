"""Running slice tasks on ``dask.distributed``: a local cluster or an existing scheduler.

:func:`connect` reaches a scheduler within a deadline that covers the connection, the
scheduler's first answer and the arrival of a worker, and turns every failure (nothing
listening, a service that is not a dask scheduler, a scheduler that never answers or has
no workers) into a one-line ``ValueError``. :class:`DaskRunner` runs a batch of slice
tasks; each run installs its own :class:`~napari_fcfi.stack.worker.SliceWorker` on every
worker (a worker plugin) and removes it at the end, so nothing a run opened or loaded
outlives it on a long-lived cluster.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from .worker import SliceWorker

PLUGIN_PREFIX = "napari-fcfi-refine-"


class SliceWorkerPlugin(WorkerPlugin):
    """Gives each worker process a fresh :class:`SliceWorker` for the duration of a run."""

    def __init__(self):
        self.slice_worker = None

    def setup(self, worker):
        self.slice_worker = SliceWorker()

    def teardown(self, worker):
        if self.slice_worker is not None:
            self.slice_worker.close()
            self.slice_worker = None


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def connect(address: str, timeout: float) -> Client:
    """A client of the scheduler at ``address`` that has at least one worker.

    Waits at most ``timeout`` seconds in all; raises ``ValueError`` with a one-line reason
    otherwise. The attempt runs in a daemon thread, so a peer that accepts the connection
    and never answers cannot hold this process.
    """
    lock = threading.Lock()
    box: dict = {}
    deadline = time.monotonic() + timeout

    def attempt():
        client = None
        stage = "connect"
        try:
            # leave part of the time for the workers, and report before the deadline
            client = Client(address, timeout=0.8 * timeout, set_as_default=False)
            stage = "workers"
            client.wait_for_workers(1, timeout=max(0.1, deadline - time.monotonic() - 0.2))
        except BaseException as exc:  # reported by the caller
            with lock:
                box.update(error=exc, stage=stage)
            if client is not None:
                _close_quietly(client)
            return
        with lock:
            if box.get("abandoned"):
                _close_quietly(client)
            else:
                box["client"] = client

    thread = threading.Thread(target=attempt, name="napari-fcfi-connect", daemon=True)
    # dask logs each failed attempt (with tracebacks); the caller reports one line instead
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        thread.start()
        thread.join(timeout)
    finally:
        logging.disable(disabled)
    with lock:
        if "client" in box:
            return box["client"]
        if "error" not in box:
            box["abandoned"] = True
            raise ValueError(
                f"--scheduler {address}: no answer within {timeout:g} s (--timeout); check "
                "that a dask scheduler runs there"
            )
    exc = box["error"]
    if box["stage"] == "workers":
        raise ValueError(
            f"--scheduler {address}: the scheduler has no workers (waited {timeout:g} s, --timeout)"
        )
    if isinstance(exc, MemoryError):
        raise ValueError(f"--scheduler {address}: the service there is not a dask scheduler")
    raise ValueError(f"--scheduler {address}: cannot connect ({_reason(exc)})")


def _close_quietly(client) -> None:
    try:
        client.close(timeout=2)
    except BaseException:
        pass


def worker_environ() -> dict:
    """dask's worker environment without ``MALLOC_TRIM_THRESHOLD_``.

    dask sets it to 64 KiB for its workers; glibc then also stops adapting its mmap
    threshold, so every large torch buffer is mmap'ed and unmapped again: the network ran
    2.2x slower in a worker than in a plain process (FCFILite, 128 px, 1 thread).
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env["MALLOC_TRIM_THRESHOLD_"] = None  # None unsets a variable (distributed.nanny)
    return env


class DaskRunner:
    """Runs slice tasks on a dask.distributed cluster; ``threads`` torch threads per task."""

    def __init__(self, client: Client, threads: int, cluster=None):
        self.client = client
        self.threads = int(threads)
        self.cluster = cluster

    @classmethod
    def local(cls, workers: int, threads: int) -> DaskRunner:
        """A LocalCluster of ``workers`` single-threaded worker processes."""
        import dask

        try:
            with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
        except Exception as exc:
            raise ValueError(f"cannot start a local dask cluster ({_reason(exc)})") from None
        return cls(Client(cluster, set_as_default=False), threads, cluster)

    @classmethod
    def remote(cls, address: str, threads: int, timeout: float) -> DaskRunner:
        return cls(connect(address, timeout), threads)

    def run(self, task, job: dict, todo, bar) -> None:
        """``task(job, index, refine, threads)`` for every ``(index, refine)`` of ``todo``."""
        name = f"{PLUGIN_PREFIX}{uuid.uuid4().hex[:12]}"
        self.client.register_plugin(SliceWorkerPlugin(), name=name)
        job = {**job, "run": name}
        futures = []
        try:
            futures = [
                self.client.submit(
                    task,
                    job,
                    index,
                    wanted,
                    self.threads,
                    pure=False,
                    key=f"refine-slice-{'_'.join(map(str, index))}-{name}",
                )
                for index, wanted in todo
            ]
            for fut in as_completed(futures, loop=self.client.loop):
                fut.result()  # re-raises a task's error here
                bar.update()
        finally:
            if futures:
                try:
                    self.client.cancel(futures)
                except Exception:
                    pass
            try:
                self.client.unregister_worker_plugin(name)
            except Exception:
                pass

    def close(self) -> None:
        _close_quietly(self.client)
        if self.cluster is not None:
            self.cluster.close()
