"""Click encoding shared by every FCFI network.

Two tensors describe the clicks (see ``shared/conformance/README.md``):

* ``points`` (B, 2N, 3): rows ``(y, x, click_index)``; the first N rows are the positive
  clicks and the next N the negative ones, each group in chronological order, padded with
  ``(-1, -1, -1)``. N = max(#pos, #neg, 1). A row is absent when both y and x are negative.
* ``new_points`` (B, k, 3): rows ``(y, x, is_positive)`` of the newest click(s), the FFCM focus.

The network turns ``points`` into two binary disk maps (radius 5 px at network-input
resolution): :func:`disk_maps`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Click = tuple[float, float, bool]


def points_array(clicks: Sequence[Click]) -> np.ndarray:
    """Chronological ``(y, x, is_positive)`` clicks -> official (2N, 3) float64 layout."""
    pos = [(float(y), float(x), float(i)) for i, (y, x, p) in enumerate(clicks) if p]
    neg = [(float(y), float(x), float(i)) for i, (y, x, p) in enumerate(clicks) if not p]
    n = max(len(pos), len(neg), 1)
    pad = (-1.0, -1.0, -1.0)
    rows = pos + [pad] * (n - len(pos)) + neg + [pad] * (n - len(neg))
    return np.asarray(rows, dtype=np.float64).reshape(2 * n, 3)


def new_points_array(clicks: Sequence[Click], k: int = 1) -> np.ndarray:
    """The newest ``k`` clicks as (k, 3) rows ``(y, x, label)`` (label 1 positive, 0 negative)."""
    if not clicks:
        raise ValueError("at least one click is needed")
    last = list(clicks)[-k:]
    return np.asarray(
        [(float(y), float(x), 1.0 if p else 0.0) for y, x, p in last], dtype=np.float64
    )


def disk_maps(points: torch.Tensor, height: int, width: int, radius: float = 5.0) -> torch.Tensor:
    """Binary positive/negative disk maps, (B, 2, H, W) float32.

    A pixel (i, j) belongs to a click's disk when ``(i - y)^2 + (j - x)^2 <= radius^2``.
    The differences are formed at the click's precision and then kept in float32, which is
    how the reference encoder behaves for fractional (zoomed) click coordinates.
    """
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] % 2:
        raise ValueError(f"points must be (B, 2N, 3), got {tuple(points.shape)}")
    b, n2, _ = points.shape
    n = n2 // 2
    device = points.device
    yx = points[..., :2]
    valid = yx.max(dim=-1).values >= 0  # (B, 2N)
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cols = torch.arange(width, device=device, dtype=torch.float64)
    yx64 = yx.to(torch.float64)
    dy = (rows.view(1, 1, -1) - yx64[..., 0:1]).to(torch.float32)  # (B, 2N, H)
    dx = (cols.view(1, 1, -1) - yx64[..., 1:2]).to(torch.float32)  # (B, 2N, W)
    d2 = dy.square().unsqueeze(-1) + dx.square().unsqueeze(-2)  # (B, 2N, H, W)
    d2 = torch.where(valid[..., None, None], d2, torch.full_like(d2, 1e6))
    d2 = d2.view(b, 2, n, height, width).amin(dim=2)
    return (d2 <= float(radius) ** 2).to(torch.float32)
