"""FFCM: the Focused Feedback Correction Module of FCFI (Wei et al., CVPR 2023, Sec. 3.2).

API (stable; the DeepLab and FCFI-Lite models build on it)::

    ffcm = FocusedCorrectionModule(in_channels, mid_channels, expansion_ratio=0.3)
    fb1 = ffcm(features, image, coord_features, feedback, new_points, is_training=False)

* ``features`` (B, C, h, w): backbone features at feature resolution;
* ``image`` (B, 3, H, W): the *normalised* image at network-input resolution;
* ``coord_features`` (B, c, H, W): the click-disk maps (and, for HRNet, the previous mask)
  at input resolution, before ``maps_transform``;
* ``feedback`` (B, 1, H', W'): the previous probability map (any size; it is resized to
  (h, w) with bilinear ``align_corners=True``);
* ``new_points``: (B, k, 3) rows ``(y, x, label)`` at input resolution (label 1 positive,
  0 negative; rows with a negative coordinate are ignored), or (B, 3) for one click each.
  Several clicks are applied in order, each on the feedback corrected by the previous one;
* returns the corrected feedback (B, 1, h, w), a probability map.

``in_channels`` is ``3 + c + 1 + C`` (HRNet-W18: 3 + 3 + 1 + 270 = 277; DeepLab: 262).

What it computes for one click (y, x, label):

1. ``info = cat(image, coord_features, feedback, features)`` with the first three resized to
   (h, w) by bilinear interpolation with ``align_corners=True``;
2. ``E = info_encoder(info)``: conv3x3-BN-ReLU then two depthwise-separable conv-BN-ReLU;
3. ``A[p] = <E[p]/|E[p]|, E[c]/|E[c]|>``, the cosine affinity of every pixel p to the click
   c, the click mapped to feature resolution by truncation ``(int(y/H*h), int(x/W*w))``;
4. inside the focus box, ``feedback <- (1 - A) * feedback + A * label``; outside, unchanged.

The focus box is centred on the click at input resolution with half-sizes
``int(r*H/2 + 0.5)`` and ``int(r*W/2 + 0.5)`` (r = ``expansion_ratio``), clamped to the
image, and mapped to feature resolution as ``(floor(y0/H*h), floor(x0/W*w), ceil(y1/H*h),
ceil(x1/W*w))`` (end-exclusive), these products, like the click's, evaluated in float32 as
the reference does (visible when they are nearly integers). At inference the update is applied inside this hard box
only; the encoder is evaluated on the box plus its receptive-field margin, which equals
encoding the whole map there, at a fraction of the cost. In training (``is_training=True``)
the encoder runs on the whole map and the box is a soft, differentiable window of the same
size (a product of logistic edges a quarter of a feature pixel wide,
:attr:`FocusedCorrectionModule.soft_edge`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct, SepConvBNAct

__all__ = ["FocusedCorrectionModule", "focus_box", "resize_ac"]


def resize_ac(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` (a no-op when the size already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def focus_box(
    y: float, x: float, in_hw: tuple[int, int], feat_hw: tuple[int, int], ratio: float
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int], tuple[int, int]]:
    """FFCM focus box for a click at input-resolution ``(y, x)``.

    Returns ``(box_input, box_feat, click_feat)``: the box at input resolution, clamped,
    ``(y0, x0, y1, x1)`` end-exclusive; the same box at feature resolution; and the click at
    feature resolution (truncated).
    """
    H, W = in_hw
    h, w = feat_hw
    hy = int(ratio * H / 2 + 0.5)
    hx = int(ratio * W / 2 + 0.5)
    yi, xi = int(y), int(x)
    y0, y1 = max(yi - hy, 0), min(yi + hy, H)
    x0, x1 = max(xi - hx, 0), min(xi + hx, W)

    def to_feat(v, n_in, n_feat):
        # (v / n_in) * n_feat in float32, as the reference computes it on tensors; this
        # matters when it is nearly an integer (e.g. 212 / 400 * 100 -> 52.999996)
        return float(np.float32(np.float32(v) / np.float32(n_in)) * np.float32(n_feat))

    fy0, fx0 = math.floor(to_feat(y0, H, h)), math.floor(to_feat(x0, W, w))
    fy1, fx1 = math.ceil(to_feat(y1, H, h)), math.ceil(to_feat(x1, W, w))
    cy = min(max(int(to_feat(y, H, h)), 0), h - 1)
    cx = min(max(int(to_feat(x, W, w)), 0), w - 1)
    return (y0, x0, y1, x1), (fy0, fx0, fy1, fx1), (cy, cx)


class FocusedCorrectionModule(nn.Module):
    """FFCM; see the module docstring for the API and the exact computation."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        expansion_ratio: float = 0.3,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if not 0 < expansion_ratio <= 2:
            raise ValueError(f"expansion_ratio must be in (0, 2], got {expansion_ratio}")
        self.expansion_ratio = float(expansion_ratio)
        self.info_encoder = nn.Sequential(
            ConvBNAct(in_channels, mid_channels, 3, norm_layer=norm_layer),
            SepConvBNAct(mid_channels, mid_channels, norm_layer=norm_layer),
            SepConvBNAct(mid_channels, mid_channels, norm_layer=norm_layer),
        )
        #: width (feature pixels) of the logistic edges of the soft training box
        self.soft_edge = 0.25
        #: rows/columns around the box that the encoder's 3x3 convolutions look at
        self.receptive_margin = 3
        #: debug record of the last inference call: per sample, per click,
        #: ``(box_input, box_feat, click_feat)``
        self.last_boxes: list[list[tuple]] = []

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _as_click_rows(new_points: torch.Tensor, batch: int) -> torch.Tensor:
        pts = torch.as_tensor(new_points)
        if pts.ndim == 2 and pts.shape[-1] == 3:
            pts = pts[:, None]
        if pts.ndim != 3 or pts.shape[-1] != 3 or pts.shape[0] != batch:
            raise ValueError(
                f"new_points must be (B, k, 3) or (B, 3) with B={batch}, got {tuple(pts.shape)}"
            )
        return pts

    def _affinity(self, enc: torch.Tensor, cy, cx) -> torch.Tensor:
        """Cosine affinity (B=1 slice or batch) of every pixel to the pixel (cy, cx)."""
        e = F.normalize(enc, dim=1)
        if isinstance(cy, int):
            ref = e[:, :, cy : cy + 1, cx : cx + 1]
        else:
            ref = e[torch.arange(e.shape[0], device=e.device), :, cy, cx][..., None, None]
        return (e * ref).sum(dim=1, keepdim=True)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        features: torch.Tensor,
        image: torch.Tensor,
        coord_features: torch.Tensor,
        feedback: torch.Tensor,
        new_points: torch.Tensor,
        is_training: bool = False,
    ) -> torch.Tensor:
        b, _, h, w = features.shape
        in_hw = (int(image.shape[-2]), int(image.shape[-1]))
        fhw = (h, w)
        pts = self._as_click_rows(new_points, b)
        static = torch.cat([resize_ac(image, fhw), resize_ac(coord_features, fhw)], dim=1)
        fb = resize_ac(feedback.to(features.dtype), fhw)
        if is_training:
            return self._forward_soft(features, static, fb, pts, in_hw)
        return self._forward_hard(features, static, fb, pts, in_hw)

    def _forward_hard(self, features, static, fb, pts, in_hw):
        h, w = fb.shape[-2:]
        m = self.receptive_margin
        pts_cpu = pts.detach().to("cpu", torch.float64)
        self.last_boxes = [[] for _ in range(fb.shape[0])]
        fb = fb.clone()
        for i in range(fb.shape[0]):
            for y, x, label in pts_cpu[i].tolist():
                if y < 0 or x < 0:
                    continue
                box_in, (y0, x0, y1, x1), (cy, cx) = focus_box(
                    y, x, in_hw, (h, w), self.expansion_ratio
                )
                self.last_boxes[i].append((box_in, (y0, x0, y1, x1), (cy, cx)))
                # The encoder is evaluated on the box plus its receptive-field margin only:
                # inside the box this equals encoding the whole map (zero padding happens at
                # the same image borders), at a fraction of the cost.
                ey0, ex0 = max(y0 - m, 0), max(x0 - m, 0)
                ey1, ex1 = min(y1 + m, h), min(x1 + m, w)
                sl = (slice(i, i + 1), slice(None), slice(ey0, ey1), slice(ex0, ex1))
                info = torch.cat([static[sl], fb[sl], features[sl]], dim=1)
                enc = self.info_encoder(info)
                enc = enc[:, :, y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]
                a = self._affinity(enc, cy - y0, cx - x0)
                crop = fb[i : i + 1, :, y0:y1, x0:x1].clone()  # autograd keeps it
                fb[i : i + 1, :, y0:y1, x0:x1] = (1 - a) * crop + a * float(label > 0.5)
        return fb

    def _forward_soft(self, features, static, fb, pts, in_hw):
        b, _, h, w = features.shape
        H, W = in_hw
        dev, dt = features.device, features.dtype
        gy = torch.arange(h, device=dev, dtype=dt).view(1, h, 1)
        gx = torch.arange(w, device=dev, dtype=dt).view(1, 1, w)
        half_y = self.expansion_ratio * h / 2
        half_x = self.expansion_ratio * w / 2
        bidx = torch.arange(b, device=dev)
        for j in range(pts.shape[1]):
            p = pts[:, j].to(dev, dt)
            valid = (p[:, 0] >= 0) & (p[:, 1] >= 0)
            cy = (p[:, 0] * h / H).clamp(0, h - 1)
            cx = (p[:, 1] * w / W).clamp(0, w - 1)
            label = (p[:, 2] > 0.5).to(dt).view(b, 1, 1, 1)
            enc = self.info_encoder(torch.cat([static, fb, features], dim=1))
            e = F.normalize(enc, dim=1)
            ref = e[bidx, :, cy.long(), cx.long()][..., None, None]
            a = (e * ref).sum(dim=1, keepdim=True)
            wy = torch.sigmoid((half_y - (gy - cy.view(b, 1, 1)).abs()) / self.soft_edge)
            wx = torch.sigmoid((half_x - (gx - cx.view(b, 1, 1)).abs()) / self.soft_edge)
            m = (wy * wx).unsqueeze(1) * valid.to(dt).view(b, 1, 1, 1)
            fb = fb + m * a * (label - fb)
        return fb
