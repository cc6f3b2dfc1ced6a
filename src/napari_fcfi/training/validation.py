"""A quick validation score during training: fixed held-out objects at native scale, a few
robot clicks each, the mean IoU after every click."""

from __future__ import annotations

import numpy as np
import torch

from ..inference.normalize import to_model_rgb
from .clicks import robot_click
from .data import crop_window, extract_window
from .simulation import to_batch


class ValidationSet:
    """Fixed objects of held-out images, each in a window at native scale, for quick scoring.

    :meth:`evaluate` runs ``clicks`` robot clicks per object (eval mode, feedback on) and
    returns the mean IoU after each click.
    """

    def __init__(self, items, n_objects: int, size: int = 256, seed: int = 1234) -> None:
        rng = np.random.default_rng(seed)
        pool = [(i, k) for i, it in enumerate(items) for k in range(len(it.objects))]
        pick = rng.choice(len(pool), size=min(n_objects, len(pool)), replace=False)
        self.images, self.targets = [], []
        for j in sorted(pick):
            i, k = pool[j]
            it = items[i]
            win = min(size, it.labels.shape[0], it.labels.shape[1])
            y0, x0 = crop_window(it.labels.shape, it.centres[k], win, rng)
            lab = extract_window(it.labels, y0, x0, win, 0)
            img = to_model_rgb(extract_window(it.image, y0, x0, win, 0), "auto", it.intensity)
            self.images.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
            self.targets.append(lab == it.objects[k])

    def evaluate(self, model, clicks: int = 3, batch: int = 8) -> list[float]:
        ious = np.zeros((len(self.images), clicks))
        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        try:
            for s in range(0, len(self.images), batch):
                shapes = {tuple(im.shape) for im in self.images[s : s + batch]}
                for shape in shapes:  # group equal window sizes
                    idx = [
                        j
                        for j in range(s, min(s + batch, len(self.images)))
                        if tuple(self.images[j].shape) == shape
                    ]
                    imgs = torch.stack([self.images[j] for j in idx]).to(device)
                    tg = [self.targets[j] for j in idx]
                    cl = [[] for _ in idx]
                    prev = torch.zeros(len(idx), 1, *shape[1:], device=device)
                    gate = 0.0
                    for c in range(clicks):
                        pred = (prev[:, 0] > 0.49).cpu().numpy()
                        for i in range(len(idx)):
                            nc = robot_click(tg[i], pred[i])
                            cl[i].append(nc if nc is not None else cl[i][-1])
                        pts, new = to_batch(cl, imgs.device)
                        with torch.no_grad():
                            prev = torch.sigmoid(model(imgs, prev, pts, new, gate)["instances"])
                        gate = 1.0
                        p = (prev[:, 0] > 0.49).cpu().numpy()
                        for i, j in enumerate(idx):
                            inter = np.logical_and(p[i], tg[i]).sum()
                            union = np.logical_or(p[i], tg[i]).sum()
                            ious[j, c] = inter / max(union, 1)
        finally:
            model.train(was_training)
        return ious.mean(axis=0).tolist()
