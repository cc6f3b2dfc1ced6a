"""Training samples: object-centred crops with microscopy augmentations.

A training sample is one object (instance) of one image, seen in a square crop at about the
scale the inference zoom-in presents it (1 image pixel -> ~1 network pixel, with jitter):

1. pick an image, then one of its objects, then a crop window of ``crop / scale`` pixels
   that contains the object's centre at a random position (``scale`` log-uniform in
   ``scale_range``), resized to ``crop x crop``;
2. simulate the range of microscopy inputs: 8- or 16-bit integer ranges with an offset,
   grey or RGB, shot and read noise, blur -- and normalise with the *same*
   :func:`napari_fcfi.inference.normalize.to_model_rgb` as inference, using the intensity
   range of the whole image (as the predictor does), then gamma/contrast jitter;
3. random flips and 90-degree rotations;
4. a multi-point click set (:func:`~napari_fcfi.training.clicks.sample_points`): a first
   positive click in the object's interior, then optionally extra positive clicks inside
   and negative clicks on the background near the object or on neighbouring objects.

The items come from :mod:`~napari_fcfi.training.items`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..inference.normalize import to_model_rgb
from .items import Item


def _resize(arr: np.ndarray, size: int, order: int) -> np.ndarray:
    """Resize a (h, w[, c]) array to (size, size) (order 1 for images, 0 for labels)."""
    zoom = (size / arr.shape[0], size / arr.shape[1]) + (1,) * (arr.ndim - 2)
    if zoom[0] == 1.0 and zoom[1] == 1.0:
        return arr
    out = ndi.zoom(arr, zoom, order=order, mode="nearest", grid_mode=True)
    return out[:size, :size]


def crop_window(shape, centre, win, rng) -> tuple[int, int]:
    """Top-left corner of a ``win`` window with ``centre`` in its middle half (as the
    predictor's click-centred windows and object ROIs present objects), shifted to stay
    inside the image where possible."""
    corner = []
    for dim, c in zip(shape[:2], centre):
        if dim <= win:  # image smaller than the window: centre the image in the window
            corner.append((dim - win) // 2)
            continue
        c = int(np.floor(c))
        lo = min(max(c - (3 * win) // 4, 0), dim - win)
        hi = min(max(c - win // 4, 0), dim - win)
        corner.append(int(rng.integers(lo, hi + 1)))
    return corner[0], corner[1]


def extract_window(arr: np.ndarray, y0: int, x0: int, win: int, fill) -> np.ndarray:
    """``arr[y0:y0+win, x0:x0+win]`` padded with ``fill`` where it leaves the image."""
    h, w = arr.shape[:2]
    out = np.full((win, win) + arr.shape[2:], fill, dtype=arr.dtype)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + win, h), min(x0 + win, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = arr[sy0:sy1, sx0:sx1]
    return out


@dataclass
class AugmentConfig:
    """Parameters of the random sample generator (all ranges inclusive)."""

    crop: int = 256
    scale_range: tuple[float, float] = (0.75, 1.5)
    #: ``"object"``: the scale follows the object (its bounding box spans ``canonical`` of
    #: the crop for half of the samples -- what the zoomed views present -- and a
    #: log-uniform ``extent_range`` of it otherwise); ``"image"``: ``scale_range`` of the
    #: image's own pixel size
    scale_mode: str = "image"
    canonical: tuple[float, float] = (0.3, 0.6)
    extent_range: tuple[float, float] = (0.08, 0.9)
    max_scale_range: tuple[float, float] = (0.15, 5.0)
    p_16bit: float = 0.4
    p_to_grey: float = 0.2
    p_noise: float = 0.35
    p_blur: float = 0.2
    gamma_range: tuple[float, float] = (0.7, 1.45)
    p_flip: float = 0.5
    min_pixels: int = 6


class SampleGenerator:
    """Draws random (image, target mask, all-objects labels) training crops."""

    def __init__(self, items: list[Item], config: AugmentConfig | None = None) -> None:
        if not items:
            raise ValueError("no training items")
        self.items = items
        self.cfg = config or AugmentConfig()
        # sample images in proportion to sqrt(#objects): object-rich images more often,
        # without letting a few crowded images dominate
        w = np.sqrt([len(it.objects) for it in items]).astype(np.float64)
        self.image_p = w / w.sum()

    def _intensity_augment(self, raw: np.ndarray, item: Item, rng) -> np.ndarray:
        """Raw crop -> float32 (H, W, 3) in [0, 1] via simulated acquisition + to_model_rgb."""
        cfg = self.cfg
        img = raw.astype(np.float32)
        lo, hi = item.intensity
        if img.ndim == 3 and rng.random() < cfg.p_to_grey:
            img = img.mean(axis=-1)
        if rng.random() < cfg.p_16bit:
            # a 12-16-bit camera: the image's own range is first brought to 0-255 "units"
            # (whatever its dtype), then gain and offset, shot noise, stored as uint16
            unit = max(hi - lo, 1e-6) / 255.0
            base = np.maximum((img - lo) / unit, 0.0)
            gain = float(np.exp(rng.uniform(np.log(4.0), np.log(200.0))))
            offset = float(rng.uniform(0, 2000))
            if rng.random() < cfg.p_noise:
                base = rng.poisson(base * 4.0).astype(np.float32) / 4.0
            img = np.clip(base * gain + offset, 0, 65535).astype(np.uint16)
            lo, hi = offset, 255.0 * gain + offset
        elif rng.random() < cfg.p_noise:
            sigma = rng.uniform(0.5, 0.04 * max(hi - lo, 1.0))
            img = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
        if rng.random() < cfg.p_blur:
            s = rng.uniform(0.4, 1.2)
            img = ndi.gaussian_filter(img.astype(np.float32), sigma=(s, s) + (0,) * (img.ndim - 2))
        # the percentile range of the whole image, as the predictor computes it, jittered
        span = hi - lo
        lo_j = lo + span * rng.uniform(-0.05, 0.05)
        hi_j = hi + span * rng.uniform(-0.1, 0.1)
        if hi_j <= lo_j:
            lo_j, hi_j = lo, hi if hi > lo else lo + 1.0
        rgb = to_model_rgb(img, "auto", intensity=(float(lo_j), float(hi_j)))
        gamma = float(np.exp(rng.uniform(*np.log(self.cfg.gamma_range))))
        rgb = np.power(rgb, gamma, dtype=np.float32)
        if rng.random() < 0.3:  # mild contrast/brightness change
            rgb = np.clip(rgb * rng.uniform(0.8, 1.15) + rng.uniform(-0.05, 0.05), 0, 1)
        return rgb.astype(np.float32, copy=False)

    def _scale(self, item: Item, k: int, rng) -> float:
        """Network pixels per image pixel for object ``k`` of ``item``."""
        cfg = self.cfg
        if cfg.scale_mode == "object" and item.extents is not None:
            if rng.random() < 0.5:
                frac = rng.uniform(*cfg.canonical)
            else:
                frac = np.exp(rng.uniform(*np.log(cfg.extent_range)))
            scale = frac * cfg.crop / max(float(item.extents[k]), 1.0)
            return float(np.clip(scale, *cfg.max_scale_range))
        # half of the crops near native scale (what the zoom-in presents), the rest
        # log-uniform over scale_range (clamped corner ROIs, large objects, user zoom)
        if rng.random() < 0.5:
            return float(rng.uniform(0.85, 1.2))
        return float(np.exp(rng.uniform(*np.log(cfg.scale_range))))

    def sample(self, rng: np.random.Generator) -> dict:
        """One sample: ``image`` (3, S, S) float32, ``target`` (S, S) bool, ``labels`` (S, S)."""
        cfg = self.cfg
        s = cfg.crop
        for _ in range(20):
            item = self.items[rng.choice(len(self.items), p=self.image_p)]
            k = int(rng.integers(len(item.objects)))
            obj = int(item.objects[k])
            scale = self._scale(item, k, rng)
            win = max(8, int(round(s / scale)))
            y0, x0 = crop_window(item.labels.shape, item.centres[k], win, rng)
            lab = extract_window(item.labels, y0, x0, win, 0)
            if np.count_nonzero(lab == obj) * (s / win) ** 2 < cfg.min_pixels:
                continue
            fill = 0 if item.image.dtype.kind != "f" else float(item.intensity[0])
            raw = extract_window(item.image, y0, x0, win, fill)
            lab = _resize(lab, s, 0)
            target = lab == obj
            if np.count_nonzero(target) < cfg.min_pixels:
                continue
            raw = _resize(raw, s, 1)
            rgb = self._intensity_augment(raw, item, rng)
            if rng.random() < cfg.p_flip:
                rgb, lab, target = rgb[:, ::-1], lab[:, ::-1], target[:, ::-1]
            r = int(rng.integers(4))
            if r:
                rgb, lab, target = (np.rot90(a, r, axes=(0, 1)) for a in (rgb, lab, target))
            return {
                "image": np.ascontiguousarray(rgb.transpose(2, 0, 1)),
                "target": np.ascontiguousarray(target),
                "labels": np.ascontiguousarray(lab),
                "name": item.name,
            }
        raise ValueError("could not draw a training crop with a visible object; check the labels")


class MixedGenerator:
    """Draws from several :class:`SampleGenerator` (one per dataset) with fixed weights."""

    def __init__(self, generators: list[SampleGenerator], weights=None) -> None:
        if not generators:
            raise ValueError("no training data")
        self.generators = list(generators)
        w = np.ones(len(generators)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(generators),) or not np.all(np.isfinite(w)) or (w < 0).any():
            raise ValueError(f"one non-negative weight per dataset is needed, got {weights}")
        if w.sum() <= 0:
            raise ValueError("the dataset weights sum to 0")
        self.p = w / w.sum()

    def sample(self, rng: np.random.Generator) -> dict:
        if len(self.generators) == 1:
            return self.generators[0].sample(rng)
        return self.generators[int(rng.choice(len(self.generators), p=self.p))].sample(rng)
