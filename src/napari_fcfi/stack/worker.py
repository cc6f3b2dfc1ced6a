"""The work of one slice task, and what a process keeps between the tasks of a run.

A :class:`SliceWorker` holds the opened input arrays and the predictors of one process.
Both caches are keyed by content, not by path alone: an input by its path, size,
modification time and file identity, a predictor by the model's weights hash (and the
thread count). A
worker of a long-lived cluster therefore never serves an input or a model that was
replaced at the same path. On a dask cluster each run installs a fresh ``SliceWorker`` on
every worker (:mod:`napari_fcfi.stack.cluster`) and removes it at the end.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from .fingerprint import array_digest, model_fingerprint
from .io import open_array, source_stats
from .options import RefineOptions
from .store import record_slice

_STAT_KEYS = ("path", "size", "mtime_ns", "files", "inode")


def load_network(model):
    """The network of a model spec: a name or path (``None``: built-in), or a callable.

    Raises ``ValueError`` with a one-line reason for a model that cannot be loaded.
    """
    if model is None or isinstance(model, str | os.PathLike):
        from napari_fcfi.model.io import load_model

        try:
            return load_model(model)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(msg if model is None else f"--model {model}: {msg}") from None
    return model()


class SliceWorker:
    """Per-process state of slice tasks: opened inputs and predictors, keyed by content.

    Thread-safe: a predictor (stateful) serves one task at a time, arrays are shared.
    """

    def __init__(self, max_arrays: int = 4):
        self._lock = threading.Lock()
        self._arrays: OrderedDict = OrderedDict()
        self._predictors: dict = {}
        self._max_arrays = max_arrays

    def close(self) -> None:
        with self._lock:
            self._arrays.clear()
            self._predictors.clear()

    def array(self, source: dict):
        """The input array of a fingerprint; the file must not have changed since."""
        key = tuple(source[k] for k in _STAT_KEYS)
        with self._lock:
            if key in self._arrays:
                self._arrays.move_to_end(key)
                return self._arrays[key]
        now = source_stats(source["path"])
        if tuple(now[k] for k in _STAT_KEYS) != key:
            raise RuntimeError(
                f"{source['path']} changed after the run started (size, time stamp or file)"
            )
        arr = open_array(source["path"])
        with self._lock:
            self._arrays[key] = arr
            while len(self._arrays) > self._max_arrays:
                self._arrays.popitem(last=False)
        return arr

    @contextmanager
    def predictor(self, model, fingerprint: dict, threads: int):
        """Borrow a batch predictor of ``model`` (weights hash ``fingerprint["sha256"]``).

        A context manager: the predictor is used by one task at a time (it is stateful)
        and returned to this worker's pool afterwards, so a process loads the model once
        per thread that runs tasks at the same time. Loading checks the weights hash.
        """
        key = (fingerprint["sha256"], int(threads))
        with self._lock:
            idle = self._predictors.setdefault(key, [])
            pred = idle.pop() if idle else None
        if pred is None:
            pred = self._load_predictor(model, fingerprint, threads)
        try:
            yield pred
        finally:
            with self._lock:
                self._predictors.setdefault(key, []).append(pred)

    def _load_predictor(self, model, fingerprint: dict, threads: int):
        import torch

        from .refine import default_predictor

        torch.set_num_threads(max(1, int(threads)))
        net = load_network(model)
        # a checkpoint can be replaced while a run goes on; a network given as a callable
        # (scripting, benchmarks) is trusted to build the same weights in every process
        from_file = model is None or isinstance(model, str | os.PathLike)
        if from_file and model_fingerprint(model, net)["sha256"] != fingerprint["sha256"]:
            raise RuntimeError("the model's weights changed after the run started")
        return default_predictor(net)

    def run_slice(self, job: dict, index: tuple, refine: bool, threads: int = 1) -> list[dict]:
        """Read slice ``index``, refine it (or copy it), write it to the store, record it."""
        import zarr

        from .refine import refine_slice

        fp = job["fingerprint"]
        lab = np.asarray(self.array(fp["labels"])[index])
        rows: list[dict] = []
        if refine:
            img = np.asarray(self.array(fp["image"])[index])
            with self.predictor(job["model"], fp["model"], threads) as pred:
                options = RefineOptions(**job["options"])
                out, report = refine_slice(img, lab, pred, options, index=index)
            rows = [r.as_dict() for r in report]
        else:
            out = lab
        arr = zarr.open_array(str(job["work"]), mode="r+")
        arr[index] = out
        record_slice(job["work"], index, rows, refined=refine, digest=array_digest(out))
        return rows


def current_worker(run: str | None) -> SliceWorker:
    """The :class:`SliceWorker` a run installed on this dask worker, or a fresh one.

    A fresh one (outside a run's worker plugin) caches nothing between tasks.
    """
    if run is not None:
        try:
            from distributed import get_worker

            plugin = get_worker().plugins.get(run)
        except (ImportError, ValueError):
            plugin = None
        worker = getattr(plugin, "slice_worker", None)
        if worker is not None:
            return worker
    return SliceWorker()


class InProcessRunner:
    """Runs slice tasks one after the other in this process (``--scheduler synchronous``).

    Sets torch's thread count to ``threads`` for the run and restores it afterwards.
    """

    def __init__(self, threads: int):
        import torch

        self.threads = int(threads)
        self.worker = SliceWorker()
        self._saved_threads = torch.get_num_threads()

    def run(self, task, job: dict, todo, bar) -> None:
        for index, wanted in todo:
            task(job, index, wanted, self.threads, worker=self.worker)
            bar.update()

    def close(self) -> None:
        import torch

        self.worker.close()
        torch.set_num_threads(self._saved_threads)
