"""Helpers shared by the refinement tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def disk_labels(shape=(64, 64), centers=((16, 16), (16, 44), (44, 30)), radius=9, ids=None):
    """A label image of non-overlapping disks with the given (possibly sparse) ids."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.uint16)
    ids = ids or list(range(1, len(centers) + 1))
    for lab, (cy, cx) in zip(ids, centers):
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = lab
    return out


def blobs_image(labels, seed=0):
    """A grey image with bright objects where ``labels`` > 0."""
    rng = np.random.default_rng(seed)
    img = 20 + 180 * (labels > 0) + rng.normal(0, 5, labels.shape)
    return np.clip(ndi.gaussian_filter(img, 1), 0, 255).astype(np.uint8)


class FakePredictor:
    """``predict_many`` returning designed probability maps (tests the compositing rules).

    ``probs`` maps an object id (of ``labels`` under the request's first click) to a
    full-image probability map; other objects get their feedback back as probability.
    The ROI is always the whole image.
    """

    threshold = 0.49

    def __init__(self, labels, probs=None):
        self.labels = np.asarray(labels)
        self.probs = probs or {}
        self.calls = []

    def predict_many(self, image, requests, batch_size=8):
        out = []
        for clicks, prev in requests:
            prev = prev.full() if hasattr(prev, "full") else np.asarray(prev, np.float32)
            lab = int(self.labels[int(clicks[0][0]), int(clicks[0][1])])
            self.calls.append((lab, list(clicks)))
            prob = self.probs.get(lab, prev)
            full = (slice(0, prob.shape[0]), slice(0, prob.shape[1]))
            out.append((full, np.asarray(prob, np.float32)))
        return out


def stub_predictor():
    """The batch-refinement predictor around the analytic stub network."""
    from napari_fcfi.stack.refine import default_predictor
    from stubnet import StubNet

    return default_predictor(StubNet())


class BrightNet:
    """A weightless "network" (FCFI forward contract) that segments bright pixels, pulled
    slightly towards its feedback: refinement with it repairs eroded or dilated labels of
    :func:`blobs_image` objects, which the identity-like stub network cannot show."""

    def __new__(cls):
        import torch
        from torch import nn

        class _BrightNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("_anchor", torch.zeros(1), persistent=False)
                self.inference_defaults: dict = {}

            def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
                gray = image.mean(dim=1, keepdim=True)
                inst = 20 * (gray - 0.5) + 4 * (prev_mask - 0.5)
                return {
                    "instances": inst,
                    "feedback_ffcm": torch.sigmoid(inst),
                    "feedback_cffm": torch.sigmoid(inst),
                }

        return _BrightNet().eval()
