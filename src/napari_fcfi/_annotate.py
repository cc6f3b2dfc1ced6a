"""``napari-fcfi annotate [IMAGE] [--labels LABELS] [--sample NAME]``: open napari with the
"Interactive segmentation (FCFI)" widget docked, ready to click.

``--labels FILE`` is both the starting point and the output: an existing file is opened
(to continue it, or to restore the work after a crash), a new one is created, and the
labels are saved to it atomically each time an object is finished.

With the environment variable ``NAPARI_FCFI_EXIT_AFTER_CLICK=1`` the command segments one
object by itself (a positive click on the brightest object of the image), prints what it
got and closes: an end-to-end check of an installation (CI runs it under Xvfb).

Light to import (napari and torch are imported inside :func:`run`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .model.catalogue import DEFAULT_MODEL, builtin_names, description

SMOKE_ENV = "NAPARI_FCFI_EXIT_AFTER_CLICK"

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
    p.add_argument(
        "image",
        nargs="?",
        help="image: a TIFF (or PNG, ...) file, or a .zarr / OME-Zarr folder (opened lazily: "
        "a click reads only the part it needs)",
    )
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="labels file (.tif): opened if it exists (to continue, or to restore after a "
        "crash), created otherwise; saved atomically each time an object is finished",
    )
    p.add_argument(
        "--sample",
        choices=SAMPLE_NAMES,
        help="open a built-in sample image instead of IMAGE",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        choices=builtin_names(),
        default=None,
        help="the built-in model: "
        + ", ".join(f"{name} ({description(name)})" for name in builtin_names())
        + f"; default {DEFAULT_MODEL}",
    )
    p.add_argument("--checkpoint", help="FCFI checkpoint file instead of a built-in model")
    p.add_argument(
        "--objects",
        metavar="KIND",
        default=None,
        help="the kind of object: 'any' (default) or one of the model's presets, e.g. "
        "'nuclei' (sets the first-click and corrections thresholds to the built-in model's "
        "values for it)",
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default: auto"
    )
    return p


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() == ".zarr"
        or (path / "zarr.json").exists()
        or (path / ".zarray").exists()
        or (path / ".zgroup").exists()
    )


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
    if args.image and _is_zarr(Path(args.image)):
        pass  # a zarr folder
    elif args.image and not Path(args.image).is_file():
        raise ValueError(f"image file {args.image!r} does not exist")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise ValueError(f"checkpoint file {args.checkpoint!r} does not exist")
    model = getattr(args, "model", None)
    if model is not None and args.checkpoint:
        raise ValueError("give either --model or --checkpoint, not both")
    objects = getattr(args, "objects", None)
    if objects is not None:
        from .annotation.predictors import builtin_thresholds

        kinds = builtin_thresholds(model or DEFAULT_MODEL)
        if objects not in kinds:
            raise ValueError(
                f"unknown kind of object {objects!r} for --objects; choose one of "
                f"{', '.join(kinds)}"
            )
    if args.labels:
        from .annotation.autosave import check_path

        check_path(args.labels)
        if not (args.image or args.sample):
            raise ValueError("--labels needs an image (IMAGE or --sample) to go with it")
    if viewer is None:
        viewer = _napari().Viewer(title="napari-fcfi")
    image_layer = None
    if args.sample:
        from ._sample_data import load_sample

        data, meta, _ = load_sample(args.sample)[0]
        image_layer = viewer.add_image(data, **meta)
    elif args.image and _is_zarr(Path(args.image)):
        from .stack.io import open_levels

        levels = open_levels(args.image)
        rgb = levels[0].ndim >= 3 and levels[0].shape[-1] in (3, 4) and levels[0].dtype == np.uint8
        data = levels if len(levels) > 1 else levels[0]
        image_layer = viewer.add_image(
            data, name=Path(args.image).stem, rgb=rgb, multiscale=len(levels) > 1
        )
    elif args.image:
        data = _read(Path(args.image))
        rgb = data.ndim >= 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8
        image_layer = viewer.add_image(data, name=Path(args.image).stem, rgb=rgb)
    labels_layer = None
    if args.labels and Path(args.labels).is_file():
        from .annotation.autosave import load_labels

        lab = load_labels(args.labels)
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
    if model is not None:
        widget.panel.set_model(model)
    widget.device_combo.setCurrentText(args.device)
    if objects is not None:
        widget.panel.set_objects(objects)
    if args.labels:
        widget.set_output(Path(args.labels).resolve())
    if image_layer is not None:
        widget.click_mode_check.setChecked(True)
    viewer.reset_view()  # the whole image, in the canvas that the docked widget left
    return viewer, widget


def _napari():
    """napari, or a ValueError that says how to install it with a Qt binding."""
    try:
        import napari
        import qtpy  # noqa: F401  (raises when no Qt binding is installed)
    except ImportError as exc:
        raise ValueError(
            f"the napari viewer cannot start ({exc}). Install napari with a Qt binding: "
            "pip install 'napari-fcfi[all]' (or, next to an existing napari, pip install "
            "napari-fcfi)"
        ) from None
    return napari


def smoke_click(viewer, widget) -> int:
    """Segment the brightest object of the image with one click; returns its pixel count.

    The click goes to the deepest point of the largest bright component (Otsu's threshold)
    of the current plane, through the widget as a canvas click would."""
    import numpy as np
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    from ._layers import image_data
    from .masks import interior_point

    image = widget.image_layer
    data = np.asarray(image_data(image))
    plane = data[tuple(int(i) for i in viewer.dims.current_step[: data.ndim - 2])]
    grey = plane.mean(axis=-1) if image.rgb else plane
    lab, n = ndi.label(grey > threshold_otsu(grey))
    if n == 0:
        raise RuntimeError("the image has no bright object to click")
    biggest = 1 + int(np.argmax(ndi.sum_labels(np.ones_like(lab), lab, range(1, n + 1))))
    y, x = interior_point(lab == biggest)
    key = tuple(viewer.dims.current_step[: data.ndim - 2])
    widget.add_click((*key, y, x))
    widget.wait(timeout=120)
    if widget.last_error:
        raise RuntimeError(widget.last_error)
    obj = widget.labels_layer.data[key] == widget.labels_layer.data[key][y, x]
    return int(np.count_nonzero(obj)) if widget.labels_layer.data[key][y, x] else 0


def run(args) -> int:
    import sys

    try:
        viewer, widget = open_viewer(args)
    except ValueError as exc:
        print(f"napari-fcfi annotate: {exc}", file=sys.stderr)
        return 2
    napari = _napari()
    if os.environ.get(SMOKE_ENV, "") not in ("", "0"):
        return _smoke(napari, viewer, widget)
    napari.run()
    return 0


def _smoke(napari, viewer, widget) -> int:
    """The one-click check (module docstring): exit 0 when the click gave an object."""
    import sys

    from qtpy.QtCore import QTimer

    result = {"code": 1}

    def go():
        try:
            n = smoke_click(viewer, widget)
            print(f"napari-fcfi annotate: one click segmented an object of {n} pixels")
            result["code"] = 0 if n > 0 else 1
        except Exception as exc:  # report any failure as the check's result
            print(f"napari-fcfi annotate: the one-click check failed: {exc}", file=sys.stderr)
        finally:
            viewer.close()

    QTimer.singleShot(500, go)
    napari.run()
    return result["code"]
