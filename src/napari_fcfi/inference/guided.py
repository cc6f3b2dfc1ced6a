"""Edge-guided answers: the network's probability passed through a guided filter whose guide
is the image the network saw.

The guided filter (He, Sun and Tang, ECCV 2010 / TPAMI 2013) fits, in every
``(2r+1) x (2r+1)`` window, the probability as a linear function of the guide's intensity
and averages the fits: where the window holds an edge of the image (a local variance of the
guide well above ``eps``), the answer follows that edge; where the image is flat, the answer
is smoothed. On fluorescence nuclei, whose boundaries are the image's edges, this pulls the
boundary of a corrected mask onto the nucleus' edge (see the model card). The predictor
applies it to the answers with feedback only (``guided_filter_radius`` > 0), at the
network's input resolution, before the answer is pasted back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["guided_filter"]


def guided_filter(p: torch.Tensor, guide: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """``p`` (B, 1, H, W) filtered with the guide ``guide`` (B, 1, H, W), box windows of
    radius ``radius`` (the means count the pixels inside the image only) and regularisation
    ``eps`` (in the guide's squared intensity units). ``radius`` 0 returns ``p``."""
    if radius <= 0:
        return p
    k = 2 * int(radius) + 1

    def box(x):
        return F.avg_pool2d(x, k, stride=1, padding=int(radius), count_include_pad=False)

    mean_g, mean_p = box(guide), box(p)
    a = (box(guide * p) - mean_g * mean_p) / (box(guide * guide) - mean_g * mean_g + eps)
    b = mean_p - a * mean_g
    return box(a) * guide + box(b)
