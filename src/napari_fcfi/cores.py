"""How many CPU cores torch may use: for interactive clicks, and for refinement workers.

A torch process given more threads than the cores it really gets is not a little slower
but many times slower: its threads wait on each other while the cores are busy elsewhere.
So the defaults never exceed the cores this process may run on (its CPU affinity and, in
a container, its CPU quota), less the cores other programs already keep busy (the
1-minute load average). Refinement divides them among the worker processes; interactive
clicks take them (at most 4: a click is a small network call) each time a click runs, so
the count follows the machine's load.
"""

from __future__ import annotations

import math
import os


def allowed_cores() -> int:
    """Cores this process may run on: CPU affinity, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cgroup_quota() -> float | None:
    """The container's CPU quota in cores (cgroup v2 ``cpu.max`` or v1 cfs), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fh:
            quota = int(fh.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
            period = int(fh.read())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def free_cores(own_load: float = 0.0) -> int:
    """:func:`allowed_cores` less those other programs keep busy (at least 1).

    ``own_load``: the part of the load average that is this process's own work (its
    recent CPU use, in cores), which does not count as busy."""
    n = allowed_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        busy = 0.0
    busy = max(0.0, busy - max(0.0, own_load))
    return max(1, min(n, n - int(busy + 0.5)))


#: most torch threads a click uses (more add synchronisation, not speed, at click sizes)
MAX_INTERACTIVE_THREADS = 4


def interactive_threads(own_load: float = 0.0) -> int:
    """Torch threads for one interactive click: the free cores, at most 4."""
    return max(1, min(MAX_INTERACTIVE_THREADS, free_cores(own_load)))


class ThreadPolicy:
    """Sets torch's thread count before each click (GUI-free; the widget's jobs call it).

    ``threads``: a fixed count, or ``None`` (the default) for :func:`interactive_threads`
    at every click. The count is re-read at most once a second. The load average counts
    this process's own clicks too; its own CPU use over the last minute is taken out, so
    a burst of clicks does not make the policy think the machine is busy."""

    def __init__(self, threads: int | None = None):
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = None if threads is None else int(threads)
        self._last = (-1.0, 0)
        self._samples: list[tuple[float, float]] = []  # (wall, process CPU) seconds

    def own_load(self) -> float:
        """This process's CPU use over (up to) the last minute, in cores."""
        import time

        now = (time.monotonic(), time.process_time())
        self._samples = [s for s in self._samples if now[0] - s[0] <= 60.0] + [now]
        first = self._samples[0]
        wall = now[0] - first[0]
        return (now[1] - first[1]) / wall if wall > 0.5 else 0.0

    def apply(self) -> int:
        """Set torch's intra-op threads for the next network call; returns the count."""
        import time

        import torch

        if self.threads is not None:
            n = self.threads
        else:
            now = time.monotonic()
            stamp, n = self._last
            if now - stamp > 1.0:
                n = interactive_threads(self.own_load())
                self._last = (now, n)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n


def default_workers() -> int:
    """Worker processes of a local cluster: one per free core."""
    return free_cores()


def default_threads(workers: int = 1) -> int:
    """Torch threads per worker process: the free cores divided among ``workers``."""
    return max(1, free_cores() // max(1, int(workers)))
