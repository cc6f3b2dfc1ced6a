"""Where the training batches come from: drawn in the training process, or by worker
processes while the network trains.

A batch is what :func:`~napari_fcfi.training.simulation.draw_batch` returns: images,
target masks (as arrays and as a tensor), each sample's starting clicks and its number of
simulated robot clicks. Its tensors are on the CPU; the trainer moves them to its device.

* :class:`InlineBatches` (``workers=0``) draws each batch in the training process from the
  run's own random stream, which the checkpoints store: a resumed run continues bit for
  bit. On a CPU the network owns every core and drawing a batch costs a few percent of a
  step, so this is the default.
* :class:`WorkerBatches` (``workers=N``) draws batches in ``N`` worker processes
  (``torch.utils.data.DataLoader``) while the network trains, for a GPU, which the
  training process alone cannot keep busy. Worker ``i`` has its own random stream, seeded
  with the run's seed, the step the run starts at and ``i``; the batches come round-robin
  from the workers. The same options, seed and stopping points give the same batches; a
  run resumed at step ``S`` draws new batches from the seeds of ``S``, so it is not bit
  for bit the run that was not stopped.
"""

from __future__ import annotations

import numpy as np
import torch

from .simulation import draw_batch


def worker_rng(seed: int, start_step: int, worker: int) -> np.random.Generator:
    """The random stream of batch worker ``worker`` of a run started (or resumed) at
    ``start_step``."""
    return np.random.default_rng([seed, start_step, worker, 0xDA7A])


class InlineBatches:
    """Batches drawn in the training process from ``rng`` (the run's stream)."""

    def __init__(self, gen, rng: np.random.Generator, cfg) -> None:
        self.gen, self.rng, self.cfg = gen, rng, cfg

    def __iter__(self):
        return self

    def __next__(self):
        return draw_batch(self.gen, self.rng, self.cfg)

    def close(self) -> None:
        pass


class _BatchStream(torch.utils.data.IterableDataset):
    """The endless batches of one worker process (the dataset of :class:`WorkerBatches`)."""

    def __init__(self, gen, cfg, start_step: int) -> None:
        super().__init__()
        self.gen, self.cfg, self.start_step = gen, cfg, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        rng = worker_rng(self.cfg.seed, self.start_step, worker)
        while True:
            yield draw_batch(self.gen, rng, self.cfg)


def _as_drawn(batch):
    """The batch as the worker drew it (the loader's default would turn its numpy arrays
    into tensors)."""
    return batch


class WorkerBatches:
    """Batches drawn by ``cfg.workers`` (>= 1) processes, a few batches ahead of the
    training."""

    def __init__(self, gen, cfg, start_step: int = 0, pin_memory=False) -> None:
        self._loader = torch.utils.data.DataLoader(
            _BatchStream(gen, cfg, start_step),
            batch_size=None,  # each item is already a whole batch
            collate_fn=_as_drawn,
            num_workers=cfg.workers,
            prefetch_factor=4,
            persistent_workers=False,
            pin_memory=pin_memory,
        )
        self._it = iter(self._loader)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    def close(self) -> None:
        """Stop the worker processes."""
        it, self._it = self._it, None
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def batch_source(gen, rng, cfg, start_step: int = 0, pin_memory: bool = False):
    """:class:`InlineBatches` when ``cfg.workers`` is 0, else :class:`WorkerBatches`."""
    if cfg.workers <= 0:
        return InlineBatches(gen, rng, cfg)
    return WorkerBatches(gen, cfg, start_step, pin_memory=pin_memory)
