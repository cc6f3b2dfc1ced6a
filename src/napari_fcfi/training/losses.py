"""Normalised focal loss (NFL, Sofiiuk et al., RITM) used for every FCFI output."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalized_focal_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    from_logits: bool = True,
    alpha: float = 0.5,
    gamma: float = 2.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Mean over the batch of the per-sample normalised focal loss.

    ``pred`` (B, 1, H, W) logits (``from_logits``) or probabilities; ``target`` the same
    shape, 0/1; ``weight`` an optional per-pixel weight (e.g. the soft FFCM focus window):
    pixels count in proportion to it. The focal factor ``(1 - p_t)^gamma`` is rescaled so
    that it sums to the (weighted) pixel count of each sample (the normalisation is not
    differentiated through), which keeps the loss scale independent of how easy the
    sample is.
    """
    t = target.to(pred.dtype)
    if from_logits:
        p = torch.sigmoid(pred)
        log_pt = torch.where(t > 0.5, F.logsigmoid(pred), F.logsigmoid(-pred))
    else:  # eps must be representable next to 1 in float32 (1 - 1e-8 == 1 there)
        p = pred.clamp(eps, 1.0 - eps)
        log_pt = torch.where(t > 0.5, torch.log(p), torch.log1p(-p))
    pt = torch.where(t > 0.5, p, 1.0 - p)
    alpha_t = torch.where(t > 0.5, alpha, 1.0 - alpha)
    w = torch.ones_like(t) if weight is None else weight.to(pred.dtype).expand_as(t)
    beta = (1.0 - pt).pow(gamma)
    dims = tuple(range(1, pred.ndim))
    w_sum = w.sum(dim=dims, keepdim=True)
    mult = (w_sum / ((beta * w).sum(dim=dims, keepdim=True) + eps)).detach()
    loss = -alpha_t * beta * mult * log_pt * w
    per_sample = loss.sum(dim=dims) / (w_sum.flatten() + eps)
    return per_sample.mean()


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over the batch of ``1 - soft IoU`` of ``pred`` (B, 1, H, W) logits and 0/1 masks.

    The soft IoU is ``sum(p t) / sum(p + t - p t)`` with ``p`` the sigmoid of the logits
    (``smooth`` added to both). Unlike the normalised focal loss, which averages the
    per-pixel errors over the hard pixels, it measures the mask as a whole: a pixel-wide
    error along the boundary of a small object costs as much as the IoU it loses.
    """
    p = torch.sigmoid(pred)
    t = target.to(p.dtype)
    dims = tuple(range(1, pred.ndim))
    inter = (p * t).sum(dim=dims)
    union = (p + t - p * t).sum(dim=dims)
    return (1.0 - (inter + smooth) / (union + smooth)).mean()


def soft_focus_weight(
    new_points: torch.Tensor, height: int, width: int, ratio: float, edge: float = 4.0
) -> torch.Tensor:
    """(B, 1, H, W) soft window around each sample's newest click, as FFCM's focus box.

    Half-sizes ``ratio * H / 2`` and ``ratio * W / 2`` at input resolution; the edges are
    logistic ramps ``edge`` pixels wide (one feature pixel at stride 4).
    """
    p = new_points[:, -1].to(torch.float32)
    gy = torch.arange(height, dtype=torch.float32, device=p.device).view(1, height, 1)
    gx = torch.arange(width, dtype=torch.float32, device=p.device).view(1, 1, width)
    wy = torch.sigmoid((ratio * height / 2 - (gy - p[:, 0].view(-1, 1, 1)).abs()) / edge)
    wx = torch.sigmoid((ratio * width / 2 - (gx - p[:, 1].view(-1, 1, 1)).abs()) / edge)
    return (wy * wx).unsqueeze(1)
