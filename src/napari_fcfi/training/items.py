"""Annotated images on disk as training items, and the fixed train/validation split.

Images and label images are paired by file name (without the image suffix); every label id
is kept, every slice of a label stack is an item of its own, and each item carries the
per-object metadata the sampler needs (ids, centres, extents) and the image's intensity
range as the predictor computes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..inference.normalize import intensity_range

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from skimage.io import imread

    return np.asarray(imread(path))


def find_files(folder: Path) -> dict[str, Path]:
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
    images = find_files(Path(images_dir))
    labels = find_files(Path(labels_dir))
    wanted = None if ids is None else set(ids)
    names = [n for n in images if n in labels and (wanted is None or n in wanted)]
    if not names:
        raise ValueError(
            f"no image in {images_dir} has a label image of the same name in {labels_dir}"
        )
    items = []
    for n in names:
        img = read_image(images[n])
        lab = read_image(labels[n])
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
