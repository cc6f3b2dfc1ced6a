"""How many CPU cores a refinement run may use, and how to share them among workers.

A torch process given more threads than the cores it really gets is not a little slower
but many times slower: its threads wait on each other while the cores are busy elsewhere.
So the default never exceeds the cores this process may run on (its CPU affinity and, in
a container, its CPU quota), less the cores other programs already keep busy (the
1-minute load average), and divides them among the worker processes.
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


def free_cores() -> int:
    """:func:`allowed_cores` less those other programs keep busy (at least 1)."""
    n = allowed_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        busy = 0.0
    return max(1, min(n, n - int(busy + 0.5)))


def default_workers() -> int:
    """Worker processes of a local cluster: one per free core."""
    return free_cores()


def default_threads(workers: int = 1) -> int:
    """Torch threads per worker process: the free cores divided among ``workers``."""
    return max(1, free_cores() // max(1, int(workers)))
