"""A tiny analytic stand-in for an FCFI network (no weights).

It follows the same forward contract as every model here and is the network of the
``session_stubnet`` conformance case. It lets the engine, widget and stack code be tested
quickly and deterministically without a trained model::

    instances         = 12*(prev - 0.5) + 24*pos - 24*neg + 3*(gray - 0.5)
    feedback_ffcm     = sigmoid(instances)
    feedback_cffm     = sigmoid(instances + 2)
"""

from __future__ import annotations

import torch
from torch import nn

from napari_fcfi.model.clicks import disk_maps


class StubNet(nn.Module):
    """Analytic network with the FCFI forward contract (see :mod:`napari_fcfi.model`)."""

    norm_radius = 5

    def __init__(self) -> None:
        super().__init__()
        # a buffer so that ``.to(device)`` and ``next(model.buffers())`` work as for real models
        self.register_buffer("_anchor", torch.zeros(1), persistent=False)
        self.inference_defaults: dict = {}

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        gray = image.mean(dim=1, keepdim=True)
        disks = disk_maps(points, image.shape[-2], image.shape[-1], self.norm_radius)
        pos, neg = disks[:, 0:1], disks[:, 1:2]
        instances = 12 * (prev_mask - 0.5) + 24 * pos - 24 * neg + 3 * (gray - 0.5)
        return {
            "instances": instances,
            "feedback_ffcm": torch.sigmoid(instances),
            "feedback_cffm": torch.sigmoid(instances + 2),
        }


class SoftStub(StubNet):
    """StubNet with logits / 10: probabilities ~0.84 on click disks, ~0.32 elsewhere."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out["instances"] = out["instances"] / 10
        return out


#: where :class:`DriftingStub` adds pixels of its own (rows, columns)
DRIFT = (slice(5, 12), slice(60, 70))


class DriftingStub(StubNet):
    """StubNet that, whenever it is given feedback (gate 1), also switches on the square
    :data:`DRIFT`, far from the clicks: a change of the mask that nobody asked for."""

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        out = super().forward(image, prev_mask, points, new_points, gate)
        if float(gate) > 0:
            inst = out["instances"].clone()
            inst[..., DRIFT[0], DRIFT[1]] = 20.0
            out["instances"] = inst
        return out
