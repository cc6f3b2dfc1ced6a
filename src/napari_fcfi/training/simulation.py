"""Robot clicks inside a training batch: a batch's click tensors, the rounds of simulated
clicks that run without gradients before the training pass, and the BatchNorm
re-estimation that replays them."""

from __future__ import annotations

import numpy as np
import torch

from ..model.clicks import new_points_array, points_array
from .clicks import robot_click, sample_points


def to_batch(clicks_list, device):
    """Lists of chronological clicks -> (points (B, 2N, 3), new_points (B, 1, 3)) tensors."""
    arrs = [points_array(c) for c in clicks_list]
    n = max(a.shape[0] for a in arrs) // 2
    pts = np.full((len(arrs), 2 * n, 3), -1.0, dtype=np.float32)
    for i, a in enumerate(arrs):
        k = a.shape[0] // 2
        pts[i, :k] = a[:k]
        pts[i, n : n + k] = a[k:]
    new = np.stack([new_points_array(c) for c in clicks_list]).astype(np.float32)
    return torch.from_numpy(pts).to(device), torch.from_numpy(new).to(device)


def simulate_clicks(model, images, targets, clicks_list, n_iter, threshold=0.49):
    """Robot-click rounds without gradients; returns (prev_mask, gate).

    ``n_iter``: one count per sample (a sequence), or one int for the whole batch. Sample
    ``i`` gets ``n_iter[i]`` rounds: each runs the network (eval mode, as at inference) on
    its current clicks and feedback, appends the robot user's next click to
    ``clicks_list[i]`` (in place) and makes the probability its next feedback. The batch
    therefore mixes first clicks (zero feedback, gate 0) and later clicks (gate 1), so that
    the training pass's batch statistics cover both, as the running statistics that
    inference uses must. ``gate`` is a (B,) tensor.
    """
    b, _, h, w = images.shape
    counts = np.full(b, int(n_iter)) if np.isscalar(n_iter) else np.asarray(n_iter, int)
    prev = torch.zeros(b, 1, h, w, dtype=images.dtype, device=images.device)
    gate = torch.zeros(b, dtype=images.dtype, device=images.device)
    was_training = model.training
    for r in range(int(counts.max(initial=0))):
        idx = np.flatnonzero(counts > r)
        sub = [clicks_list[i] for i in idx]
        pts, new = to_batch(sub, images.device)
        sel = torch.from_numpy(idx).to(images.device)
        model.eval()  # as at inference (and as RITM simulates its clicks)
        try:
            with torch.inference_mode():
                out = model(images[sel], prev[sel], pts, new, gate[sel])["instances"]
                prob = torch.sigmoid(out.float()).to(images.dtype).clone()
        finally:
            model.train(was_training)
        pred = (prob[:, 0] > threshold).cpu().numpy()
        for k, i in enumerate(idx):
            c = robot_click(targets[i], pred[k])
            if c is not None:
                clicks_list[i].append(c)
        prev = prev.clone()
        prev[sel] = prob
        gate = gate.clone()
        gate[sel] = 1.0
    return prev, gate


def draw_batch(gen, rng, cfg):
    """One training batch: images, targets, clicks and per-sample robot-click counts."""
    samples = [gen.sample(rng) for _ in range(cfg.batch)]
    clicks = [sample_points(s["target"], s["labels"], rng) for s in samples]
    counts = rng.integers(cfg.max_robot_clicks + 1, size=cfg.batch)
    images = torch.from_numpy(np.stack([s["image"] for s in samples]))
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = [s["target"] for s in samples]
    target_t = torch.from_numpy(np.stack(targets)[:, None].astype(np.float32))
    return images, targets, target_t, clicks, counts


def recalibrate_bn(model, gen, rng, cfg, batches: int = 40) -> None:
    """Re-estimate every BatchNorm's running statistics as the population average over
    ``batches`` fresh training batches (first and later clicks mixed as in training),
    instead of the exponential average of the last few small batches ("precise BN")."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    device = next(model.parameters()).device
    try:
        for _ in range(batches):
            images, targets, target_t, clicks, counts = draw_batch(gen, rng, cfg)
            images = images.to(device)
            prev, gate = simulate_clicks(model, images, targets, clicks, counts)
            pts, new = to_batch(clicks, images.device)
            model.train()
            with torch.no_grad():
                model(images, prev, pts, new, gate)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.train(was_training)
