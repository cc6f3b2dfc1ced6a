"""Formula W1: deterministic synthetic weights of the FCFI conformance vectors.

Every ``state_dict`` entry gets values from its own generator, seeded with the CRC32 of its
name (see ``shared/conformance/README.md``), so the weights depend only on names and shapes.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["w1_tensor", "w1_state_dict", "apply_w1"]


def w1_tensor(name: str, shape: Iterable[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The W1 value of one ``state_dict`` entry."""
    shape = tuple(int(s) for s in shape)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        val = rng.standard_normal(shape) / math.sqrt(fan_in)
    elif name.endswith("running_var"):
        val = 0.5 + rng.random(shape)
    elif name.endswith("running_mean"):
        val = 0.1 * rng.standard_normal(shape)
    elif name.endswith(".weight"):
        val = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        val = 0.1 * rng.standard_normal(shape)
    return torch.from_numpy(np.asarray(val, dtype=np.float64).astype(np.float32)).to(dtype)


def w1_state_dict(keys) -> dict[str, torch.Tensor]:
    """W1 weights for ``keys``: a ``state_dict``/module, or ``(name, shape[, dtype])`` rows.

    ``dtype`` may be a torch dtype or a string such as ``"float32"``/``"int64"`` (keys.json).
    """
    if isinstance(keys, torch.nn.Module):
        keys = keys.state_dict()
    if isinstance(keys, dict):
        rows = [(k, tuple(v.shape), v.dtype) for k, v in keys.items()]
    else:
        rows = []
        for row in keys:
            name, shape = row[0], row[1]
            dt = row[2] if len(row) > 2 else torch.float32
            if isinstance(dt, str):
                dt = getattr(torch, dt)
            rows.append((name, tuple(shape), dt))
    return {name: w1_tensor(name, shape, dt) for name, shape, dt in rows}


def apply_w1(model: torch.nn.Module) -> torch.nn.Module:
    """Load W1 weights into ``model`` in place (strict) and return it."""
    model.load_state_dict(w1_state_dict(model.state_dict()), strict=True)
    return model
