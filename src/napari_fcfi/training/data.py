"""Training data: image/label loading, microscopy augmentations and click sampling.

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
4. a multi-point click set (:func:`sample_points`): a first positive click in the object's
   interior, then optionally extra positive clicks inside and negative clicks on the
   background near the object or on neighbouring objects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..inference.normalize import intensity_range, to_model_rgb
from ..masks import boundary_distance

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def _read(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from skimage.io import imread

    return np.asarray(imread(path))


def _find_files(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` keyed by their name without the image suffix
    (``"cell.a.tif"`` -> ``"cell.a"``). Two files that differ only in that suffix (e.g.
    ``x.tif`` and ``x.png``) are refused: which one to pair would be a guess."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            key = p.name[: -len(p.suffix)]
            if key in files:
                raise ValueError(
                    f"{folder}: {files[key].name} and {p.name} have the same name without "
                    "their extension; keep one of them (or rename it) so that every image "
                    "has one label image"
                )
            files[key] = p
    return files


def hash_fraction(name: str) -> float:
    """Position of ``name``'s SHA-1 in [0, 1): a seed-free, order-free split key."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) / float(1 << 160)


def split_ids(
    ids: list[str], val_fraction: float | None = None, modulus: int = 10
) -> tuple[list[str], list[str]]:
    """Split image ids into (train, validation).

    ``val_fraction=None`` uses the project's fixed split
    (:func:`napari_fcfi.splits.is_validation` with ``modulus``: 1 image in ``modulus``); a
    float ``f`` holds out the ids whose SHA-1 position (:func:`hash_fraction`) is below
    ``f`` (0 keeps every image for training).
    """
    if val_fraction is None:
        from ..splits import split_names

        return split_names(ids, modulus)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val = [i for i in ids if hash_fraction(i) < val_fraction]
    return [i for i in ids if i not in set(val)], val


@dataclass
class Item:
    """One annotated image: raw pixels, instance labels and per-object metadata."""

    name: str
    image: np.ndarray  # (H, W) or (H, W, C), any numeric dtype
    labels: np.ndarray  # (H, W) int, 0 = background
    intensity: tuple[float, float]  # the 'auto' normalisation range of the whole image
    objects: np.ndarray = field(default=None)  # (n,) label ids with at least min_area pixels
    centres: np.ndarray = field(default=None)  # (n, 2) centres of mass (y, x)
    extents: np.ndarray = field(default=None)  # (n,) longer bounding-box side of each object


def _label_ids(lab: np.ndarray, name: str) -> np.ndarray:
    """A label image as consecutive int32 ids (0 = background, then every distinct id in
    increasing order), so that no id is lost to a narrower integer type whatever the file
    stores (uint32/uint64 ids of 2^31 and more included)."""
    if lab.dtype == bool:
        return lab.astype(np.int32)
    if lab.dtype.kind == "f":
        if not np.isfinite(lab).all() or not np.array_equal(lab, np.round(lab)):
            raise ValueError(
                f"{name}: the label image holds non-integer values; save instance labels "
                "as integers (0 = background, one id per object)"
            )
    elif lab.dtype.kind not in "iu":
        raise ValueError(f"{name}: label images must be integer, got dtype {lab.dtype}")
    ids, inverse = np.unique(lab, return_inverse=True)
    if ids.size and ids[0] < 0:
        raise ValueError(
            f"{name}: the label image holds negative ids (down to {ids[0]}); ids must be "
            ">= 0 (0 = background)"
        )
    offset = 0 if ids.size and ids[0] == 0 else 1
    return (inverse.reshape(lab.shape) + offset).astype(np.int32)


def _label_planes(lab: np.ndarray, img: np.ndarray, name: str) -> list[tuple]:
    """(suffix, image plane, label plane) for every 2-D plane of a label file.

    A 2-D label image is one plane. A (Y, X, C) label image with C <= 4 is a colour-coded
    (or repeated grey) label image: each distinct colour is one id. A (Z, Y, X) label stack
    gives one plane per slice, paired with the image's slice of the same index.
    """
    if lab.ndim == 2:
        return [("", img, lab)]
    if lab.ndim == 3 and lab.shape[-1] <= 4:
        colours = lab[..., :3] if lab.shape[-1] == 4 else lab
        if all(np.array_equal(colours[..., 0], colours[..., k]) for k in range(colours.shape[-1])):
            return [("", img, colours[..., 0])]
        _, ids = np.unique(colours.reshape(-1, colours.shape[-1]), axis=0, return_inverse=True)
        background = np.all(colours == 0, axis=-1)
        ids = ids.reshape(lab.shape[:2]).astype(np.int64) + 1
        ids[background] = 0
        return [("", img, ids)]
    if lab.ndim == 3:
        z = lab.shape[0]
        if img.ndim < 3 or img.shape[0] != z or img.shape[1:3] != lab.shape[1:]:
            raise ValueError(
                f"{name}: the labels are a stack of {z} slices {lab.shape[1:]} but the image "
                f"has shape {img.shape}; give an image stack (Z, Y, X[, C]) with the same "
                "slices, or one 2-D label image per 2-D image"
            )
        return [(f"[z={k}]", img[k], lab[k]) for k in range(z)]
    raise ValueError(
        f"{name}: label images must be 2-D (Y, X) or a (Z, Y, X) stack, got shape {lab.shape}"
    )


def load_items(
    images_dir, labels_dir, ids: list[str] | None = None, min_area: int = 8
) -> list[Item]:
    """Load matching image/label pairs (matched by file name without the image suffix)
    from two folders.

    ``ids`` restricts to those names. Every label id is kept (ids are renumbered
    consecutively); every slice of a (Z, Y, X) label stack is an item of its own, named
    ``"<name>[z=<k>]"``, paired with the image's slice ``k``. Raises ``ValueError`` when
    nothing matches, shapes disagree or a label image is not an instance label image.
    """
    images = _find_files(Path(images_dir))
    labels = _find_files(Path(labels_dir))
    wanted = None if ids is None else set(ids)
    names = [n for n in images if n in labels and (wanted is None or n in wanted)]
    if not names:
        raise ValueError(
            f"no image in {images_dir} has a label image of the same name in {labels_dir}"
        )
    items = []
    for n in names:
        img = _read(images[n])
        lab = _read(labels[n])
        for suffix, plane, lab2 in _label_planes(lab, img, n):
            item = _make_item(n + suffix, plane, lab2, min_area)
            if item is not None:
                items.append(item)
    if not items:
        raise ValueError("no labelled object found in the training images")
    return items


def _make_item(name: str, img: np.ndarray, lab: np.ndarray, min_area: int) -> Item | None:
    """One :class:`Item` of a 2-D image and its 2-D labels; None without any object."""
    if img.shape[:2] != lab.shape:
        raise ValueError(f"{name}: image {img.shape} and labels {lab.shape} differ in size")
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    lab = _label_ids(lab, name)
    ids_, counts = np.unique(lab, return_counts=True)
    keep = (ids_ > 0) & (counts >= min_area)
    objects = ids_[keep]
    if objects.size == 0:
        return None
    centres = np.asarray(ndi.center_of_mass(np.ones_like(lab), lab, objects), dtype=np.float64)
    slices = ndi.find_objects(lab)
    extents = np.asarray(
        [max(s.stop - s.start for s in slices[int(o) - 1]) for o in objects], dtype=np.float64
    )
    return Item(
        name,
        img,
        lab,
        intensity_range(img, "auto"),
        objects,
        centres.reshape(-1, 2),
        extents,
    )


def _resize(arr: np.ndarray, size: int, order: int) -> np.ndarray:
    """Resize a (h, w[, c]) array to (size, size) (order 1 for images, 0 for labels)."""
    zoom = (size / arr.shape[0], size / arr.shape[1]) + (1,) * (arr.ndim - 2)
    if zoom[0] == 1.0 and zoom[1] == 1.0:
        return arr
    out = ndi.zoom(arr, zoom, order=order, mode="nearest", grid_mode=True)
    return out[:size, :size]


def _crop_window(shape, centre, win, rng) -> tuple[int, int]:
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


def _extract(arr: np.ndarray, y0: int, x0: int, win: int, fill) -> np.ndarray:
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
            y0, x0 = _crop_window(item.labels.shape, item.centres[k], win, rng)
            lab = _extract(item.labels, y0, x0, win, 0)
            if np.count_nonzero(lab == obj) * (s / win) ** 2 < cfg.min_pixels:
                continue
            fill = 0 if item.image.dtype.kind != "f" else float(item.intensity[0])
            raw = _extract(item.image, y0, x0, win, fill)
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


def sample_points(
    target: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    max_pos: int = 3,
    max_neg: int = 3,
) -> list[tuple[int, int, bool]]:
    """Multi-point click sampler; returns chronological ``(y, x, is_positive)`` clicks.

    The first click is positive, in the object's interior (distance to the border at least
    40 % of the maximum). With some probability extra positive clicks fall anywhere inside
    the object and negative clicks on the background 3-20 px from it or on a neighbouring
    object. The first click stays first; the extras follow in random order.
    """
    dt = boundary_distance(target)
    dmax = dt.max()
    if dmax <= 0:
        raise ValueError("empty target mask")
    ys, xs = np.nonzero(dt >= max(1.0, 0.4 * dmax) if dmax >= 1.0 else dt > 0)
    i = int(rng.integers(len(ys)))
    clicks = [(int(ys[i]), int(xs[i]), True)]
    extras = []
    n_pos = int(rng.choice(max_pos, p=_decay(max_pos)))
    if n_pos:
        ys, xs = np.nonzero(dt >= 1.0)
        for j in rng.choice(len(ys), size=min(n_pos, len(ys)), replace=False):
            extras.append((int(ys[j]), int(xs[j]), True))
    n_neg = int(rng.choice(max_neg + 1, p=_decay(max_neg + 1)))
    if n_neg:
        out_dt = ndi.distance_transform_edt(~target)
        band = (out_dt >= 3) & (out_dt <= 20)
        others = (labels > 0) & ~target & (out_dt <= 40)
        for _ in range(n_neg):
            pool = others if others.any() and rng.random() < 0.4 else band
            ys, xs = np.nonzero(pool)
            if len(ys) == 0:
                continue
            j = int(rng.integers(len(ys)))
            extras.append((int(ys[j]), int(xs[j]), False))
    order = rng.permutation(len(extras))
    return clicks + [extras[j] for j in order]


def _decay(n: int) -> np.ndarray:
    """Probabilities 0.55, 0.25, 0.12, ... for 0, 1, 2, ... extra clicks."""
    p = 0.5 ** np.arange(n) + (np.arange(n) == 0) * 0.1
    return p / p.sum()


def robot_click(target: np.ndarray, pred: np.ndarray) -> tuple[int, int, bool] | None:
    """The next robot-user click: the point deepest inside the larger error region.

    Positive when that region is a false negative. ``None`` when the prediction is exact.
    """
    fn = target & ~pred
    fp = ~target & pred
    fn_dt = boundary_distance(fn)
    fp_dt = boundary_distance(fp)
    fn_max, fp_max = fn_dt.max(), fp_dt.max()
    if max(fn_max, fp_max) <= 0:
        return None
    positive = fn_max >= fp_max
    dt = fn_dt if positive else fp_dt
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return int(y), int(x), bool(positive)


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
