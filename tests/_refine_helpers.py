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
            prev = np.asarray(prev, np.float32)
            lab = int(self.labels[int(clicks[0][0]), int(clicks[0][1])])
            self.calls.append((lab, list(clicks)))
            prob = self.probs.get(lab, prev)
            full = (slice(0, prob.shape[0]), slice(0, prob.shape[1]))
            out.append((full, np.asarray(prob, np.float32)))
        return out


class LocalStubPredictor:
    """Minimal stand-in for ``Predictor(StubNet())`` used only while the engine's
    ``predict_many`` is missing: ROI = bounding box of feedback and clicks expanded by 40 %
    (at least 32 px), network at crop resolution, gate 1 with feedback."""

    threshold = 0.49

    def __init__(self):
        from napari_fcfi.model.stub import StubNet

        self.net = StubNet().eval()

    def predict_many(self, image, requests, batch_size=8):
        import torch

        from napari_fcfi.inference.normalize import to_model_rgb
        from napari_fcfi.model.clicks import new_points_array, points_array

        rgb = to_model_rgb(image)
        h, w = rgb.shape[:2]
        out = []
        for clicks, prev in requests:
            prev = np.zeros((h, w), np.float32) if prev is None else np.asarray(prev, np.float32)
            ys = [c[0] for c in clicks] + list(np.nonzero(prev > 0.49)[0])
            xs = [c[1] for c in clicks] + list(np.nonzero(prev > 0.49)[1])
            y0, y1, x0, x1 = min(ys), max(ys) + 1, min(xs), max(xs) + 1
            py, px = max(16, int(0.4 * (y1 - y0))), max(16, int(0.4 * (x1 - x0)))
            roi = (slice(max(0, y0 - py), min(h, y1 + py)), slice(max(0, x0 - px), min(w, x1 + px)))
            local = [(y - roi[0].start, x - roi[1].start, p) for y, x, p in clicks]
            with torch.no_grad():
                res = self.net(
                    torch.from_numpy(rgb[roi].transpose(2, 0, 1)[None].copy()),
                    torch.from_numpy(prev[roi][None, None].copy()),
                    torch.from_numpy(points_array(local)[None]),
                    torch.from_numpy(new_points_array(local)[None]),
                    1.0,
                )
            out.append((roi, torch.sigmoid(res["instances"])[0, 0].numpy()))
        return out


def stub_predictor():
    """The engine's ``Predictor(StubNet())`` if it exists yet, else the local stand-in."""
    try:
        from napari_fcfi.inference import Predictor
        from napari_fcfi.model.stub import StubNet
    except ImportError:
        return LocalStubPredictor()
    return Predictor(StubNet())
