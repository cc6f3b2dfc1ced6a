"""``napari-fcfi evaluate``: the robot-user benchmark (NoC@80/85/90, mIoU@k, s/click).

Every label id of every label image is one instance; images and labels share file names
(TIFF or PNG). ``--split val`` keeps the fixed validation images of
:mod:`napari_fcfi.splits`; ``--max-instances N`` draws a seeded sample of N instances.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..model.catalogue import model_option_help

EXTENSIONS = (".tif", ".tiff", ".png")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help="robot-user benchmark (NoC@85/90, mIoU@k) on an image/label folder pair",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--images", required=True, type=Path, help="folder of images (TIFF/PNG)")
    p.add_argument("--labels", required=True, type=Path, help="folder of instance label images")
    p.add_argument(
        "--model",
        default=None,
        help=model_option_help(),
    )
    p.add_argument(
        "--method",
        default="fcfi",
        choices=["fcfi", "fcfi-nofeedback", "random-walker", "watershed"],
        help="fcfi, its no-feedback ablation, or a classic scikit-image baseline",
    )
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument("--max-instances", type=int, default=None, help="seeded sample of N instances")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=["all", "train", "val"], default="all")
    p.add_argument("--device", default=None, help="torch device (default: CUDA, MPS, CPU)")
    p.add_argument(
        "--first-click",
        choices=["auto", "window"],
        default=None,
        help="auto: object-scale two-pass first click; window: one pass at native scale "
        "(default: the model's setting)",
    )
    p.add_argument("--target-size", type=int, default=None, help="zoom-in network input size")
    p.add_argument("--min-crop", type=int, default=None, help="zoom-in minimum crop size")
    p.add_argument(
        "--expansion", type=float, default=None, help="zoom-in expansion ratio (later clicks)"
    )
    p.add_argument(
        "--first-expansion",
        type=float,
        default=None,
        help="expansion ratio of the object-scale first click's box (default: the model's setting)",
    )
    p.add_argument(
        "--flip-axes",
        choices=["x", "xy", "xyt"],
        default=None,
        help=(
            "flip averaging: x (two passes), xy (four passes) or xyt (both flips and their "
            "transposes, eight passes) (default: the model's setting)"
        ),
    )
    p.add_argument("--no-flip", action="store_true", help="no flip averaging")
    p.add_argument(
        "--preset",
        default=None,
        help="the model's settings for a kind of object, e.g. nuclei (default: none)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="binarise the first click's answer here (default: the model's setting, 0.49)",
    )
    p.add_argument(
        "--correction-threshold",
        type=float,
        default=None,
        help="binarise the answers with feedback (later clicks) here (default: the model's "
        "setting, else --threshold)",
    )
    p.add_argument(
        "--local-from",
        type=int,
        default=None,
        metavar="N",
        help="from the N-th click of an object on, a correction changes the mask only where "
        "its change reaches the click; 0: never (default: the model's setting)",
    )
    p.add_argument(
        "--guided-radius",
        type=int,
        default=None,
        metavar="R",
        help="guided filter of the answers with feedback, the image as the guide: window "
        "radius in network pixels; 0: off (default: the model's setting)",
    )
    p.add_argument(
        "--guided-eps",
        type=float,
        default=None,
        help="the guided filter's regularisation (default: the model's setting)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p


def _read(path: Path):
    import numpy as np

    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from skimage import io

    return np.asarray(io.imread(path))


def list_pairs(images: Path, labels: Path, split: str = "all") -> list[tuple[Path, Path]]:
    """Image/label pairs with the same file name, optionally restricted to a split (the
    fixed split of :mod:`napari_fcfi.splits`, its modulus chosen from the folder's path)."""
    from ..splits import is_validation, modulus_for

    if not images.is_dir():
        raise ValueError(f"--images {images} is not a folder")
    if not labels.is_dir():
        raise ValueError(f"--labels {labels} is not a folder")
    pairs = []
    for img in sorted(images.iterdir()):
        if img.suffix.lower() not in EXTENSIONS:
            continue
        lab = labels / img.name
        if not lab.exists():
            continue
        if split == "val" and not is_validation(img.name, modulus_for(images)):
            continue
        if split == "train" and is_validation(img.name, modulus_for(images)):
            continue
        pairs.append((img, lab))
    if not pairs:
        raise ValueError(
            f"no image in {images} has a label file of the same name in {labels} "
            f"(split {split!r}, extensions {EXTENSIONS})"
        )
    return pairs


def _image_hw(path: Path) -> tuple[int, ...]:
    """The (H, W) of an image file, read from its header where the format allows."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return tuple(int(v) for v in tif.series[0].shape[:2])
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[1]), int(im.size[0])
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 -- readers raise many types for bad files
        raise ValueError(f"cannot read {path}: {exc}") from None


def list_instances(pairs, max_instances=None, seed=0) -> list[tuple[int, int]]:
    """(pair index, label id) for every instance, or a seeded sample of them.

    Raises ``ValueError`` when a label image is not 2-D or its size differs from its
    image's."""
    import numpy as np

    inst = []
    for i, (img, lab) in enumerate(pairs):
        labels = _read(lab)
        if labels.ndim != 2:
            raise ValueError(f"label image {lab} must be 2-D, got shape {labels.shape}")
        hw = _image_hw(img)
        if tuple(labels.shape) != hw:
            raise ValueError(
                f"label image {lab} is {labels.shape[0]} x {labels.shape[1]} but its image "
                f"{img} is {hw[0]} x {hw[1]}; labels must have the image's size"
            )
        inst += [(i, int(v)) for v in np.unique(labels) if v != 0]
    if max_instances is not None and max_instances < len(inst):
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(inst), size=max_instances, replace=False)
        inst = sorted(inst[j] for j in pick)
    return inst


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from .clicker import split_gt
    from .robot import evaluate_instance, make_method, one_pixel_reference, summarize

    if args.max_clicks < 1:
        print("napari-fcfi evaluate: --max-clicks must be >= 1", file=sys.stderr)
        return 2
    if args.max_instances is not None and args.max_instances < 1:
        print("napari-fcfi evaluate: --max-instances must be >= 1", file=sys.stderr)
        return 2
    try:
        pairs = list_pairs(args.images, args.labels, args.split)
        instances = list_instances(pairs, args.max_instances, args.seed)
    except ValueError as exc:
        print(f"napari-fcfi evaluate: {exc}", file=sys.stderr)
        return 2
    if not instances:
        print(
            f"napari-fcfi evaluate: no instance to evaluate: the {len(pairs)} label image(s) "
            f"in {args.labels} (split {args.split!r}) hold only background (0)",
            file=sys.stderr,
        )
        return 2

    predictor, model_name = None, None
    if args.method.startswith("fcfi"):
        from ..inference.predictor import Predictor
        from ..model.io import load_model

        model_name = args.model or "built-in"
        try:
            predictor = Predictor(
                load_model(args.model, device=args.device),
                device=args.device,
                flip=not args.no_flip,
                first_click=args.first_click,
                zoom_in_target_size=args.target_size,
                zoom_in_min_crop_size=args.min_crop,
                zoom_in_expansion_ratio=args.expansion,
                first_click_expansion_ratio=args.first_expansion,
                flip_axes=args.flip_axes,
                threshold=args.threshold,
                correction_threshold=args.correction_threshold,
                preset=args.preset,
                local_corrections_from=args.local_from,
                guided_filter_radius=args.guided_radius,
                guided_filter_eps=args.guided_eps,
            )
        except (ValueError, FileNotFoundError) as exc:
            print(f"napari-fcfi evaluate: {exc}", file=sys.stderr)
            return 2
    method = make_method(args.method, predictor, model_name)

    all_ious, all_secs, areas, reference = [], [], [], []
    current, labels = None, None
    for idx, label_id in tqdm(instances, desc=f"evaluate {args.method}", unit="inst"):
        if idx != current:
            img_path, lab_path = pairs[idx]
            image = _read(img_path)
            labels = _read(lab_path)
            if image.shape[:2] != labels.shape:
                print(
                    f"napari-fcfi evaluate: label image {lab_path} has shape {labels.shape} "
                    f"but its image {img_path} has {image.shape}; labels must have the "
                    "image's size",
                    file=sys.stderr,
                )
                return 2
            method.start(image)
            current = idx
        gt = labels == label_id
        ious, secs = evaluate_instance(method, gt, args.max_clicks)
        obj = split_gt(gt)[0]
        areas.append(int(obj.sum()))
        reference.append(one_pixel_reference(obj))
        all_ious.append(ious)
        all_secs.append(secs)
    result = summarize(
        all_ious,
        np.concatenate(all_secs) if all_secs else [],
        args.max_clicks,
        args.method,
        model_name,
        areas=areas,
        reference=reference,
    )
    if predictor is not None:
        result["settings"] = {
            "first_click": predictor.first_click,
            "first_click_expansion_ratio": predictor.first_click_expansion_ratio,
            "zoom_in_target_size": predictor.zoom_in_target_size,
            "zoom_in_expansion_ratio": predictor.zoom_in_expansion_ratio,
            "zoom_in_min_crop_size": predictor.zoom_in_min_crop_size,
            "flip": predictor.flip,
            "flip_axes": predictor.flip_axes,
            "preset": predictor.preset,
            "threshold": predictor.threshold,
            "correction_threshold": predictor.threshold_for(False),
            "local_corrections_from": predictor.local_corrections_from,
            "guided_filter_radius": predictor.guided_filter_radius,
            "guided_filter_eps": predictor.guided_filter_eps,
        }
    miou = result["mIoU"]
    print(
        f"{args.method}: {result['instances']} instances, NoC@80 {result['NoC@80']:.2f}, "
        f"NoC@85 {result['NoC@85']:.2f}, NoC@90 {result['NoC@90']:.2f}, "
        f"NoC@90>=max {result['NoC@90>=max']}, mIoU@1 {miou[0]:.3f}, "
        f"mIoU@{len(miou)} {miou[-1]:.3f}, {result['sec_per_click']:.3f} s/click"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0
