"""``napari-fcfi annotate [IMAGE] [--labels LABELS] [--sample NAME]``: open napari with the
"Interactive segmentation (FCFI)" widget docked, ready to click.

Light to import (napari and torch are imported inside :func:`run`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

SAMPLE_NAMES = ("nuclei2d", "nuclei2d_dense", "nuclei2d_wide", "nuclei3d")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "annotate",
        help="open napari with the FCFI widget docked (the main interactive tool)",
        description=(
            "Open napari with the 'Interactive segmentation (FCFI)' widget docked. Click a "
            "cell to segment it (left: positive, right/Ctrl: negative), press N for the "
            "next object, and save the labels layer with File > Save Selected Layer."
        ),
    )
    p.add_argument("image", nargs="?", help="image file (TIFF or anything napari can open)")
    p.add_argument("--labels", help="existing label image to refine or continue (TIFF, ...)")
    p.add_argument(
        "--sample",
        choices=SAMPLE_NAMES,
        help="open a built-in sample image instead of IMAGE",
    )
    p.add_argument("--checkpoint", help="FCFI checkpoint file instead of the built-in model")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default: auto"
    )
    return p


def _read(path: Path):
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    from skimage.io import imread

    return imread(path)


def open_viewer(args, viewer=None):
    """Build (or fill) a viewer as ``annotate`` does; returns ``(viewer, widget)``."""
    import numpy as np

    if args.image and args.sample:
        raise ValueError("give either IMAGE or --sample, not both")
    for opt in ("image", "labels", "checkpoint"):
        value = getattr(args, opt)
        if value and not Path(value).is_file():
            raise ValueError(f"{opt} file {value!r} does not exist")
    if viewer is None:
        import napari

        viewer = napari.Viewer(title="napari-fcfi")
    image_layer = None
    if args.sample:
        from ._sample_data import load_sample

        data, meta, _ = load_sample(args.sample)[0]
        image_layer = viewer.add_image(data, **meta)
    elif args.image:
        data = _read(Path(args.image))
        rgb = data.ndim >= 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8
        image_layer = viewer.add_image(data, name=Path(args.image).stem, rgb=rgb)
    labels_layer = None
    if args.labels:
        lab = np.asarray(_read(Path(args.labels)))
        if not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"labels {args.labels!r} must be an integer image, got {lab.dtype}")
        if image_layer is not None:
            from ._layers import spatial_shape

            want = spatial_shape(image_layer)
            if tuple(lab.shape) != want:
                raise ValueError(f"labels shape {lab.shape} does not match the image {want}")
        labels_layer = viewer.add_labels(lab, name=Path(args.labels).stem)
        if image_layer is not None:
            labels_layer.scale = image_layer.scale[-lab.ndim :]
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-fcfi", "Interactive segmentation (FCFI)"
    )
    if image_layer is not None:
        widget.image_combo.setCurrentText(image_layer.name)
    if labels_layer is not None:
        widget.labels_combo.setCurrentText(labels_layer.name)
    if args.checkpoint:
        widget.set_checkpoint(args.checkpoint)
    widget.device_combo.setCurrentText(args.device)
    if image_layer is not None:
        widget.click_mode_check.setChecked(True)
    return viewer, widget


def run(args) -> int:
    import sys

    try:
        viewer, _ = open_viewer(args)
    except ValueError as exc:
        print(f"napari-fcfi annotate: {exc}", file=sys.stderr)
        return 2
    import napari

    napari.run()
    return 0
