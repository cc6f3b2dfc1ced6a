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
        "--model", default=None, help="model name or checkpoint path (default: the built-in model)"
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
    """Image/label pairs with the same file name, optionally restricted to a split."""
    from ..splits import is_validation

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
        if split == "val" and not is_validation(img.name):
            continue
        if split == "train" and is_validation(img.name):
            continue
        pairs.append((img, lab))
    if not pairs:
        raise ValueError(
            f"no image in {images} has a label file of the same name in {labels} "
            f"(split {split!r}, extensions {EXTENSIONS})"
        )
    return pairs


def list_instances(pairs, max_instances=None, seed=0) -> list[tuple[int, int]]:
    """(pair index, label id) for every instance, or a seeded sample of them."""
    import numpy as np

    inst = []
    for i, (_, lab) in enumerate(pairs):
        labels = _read(lab)
        if labels.ndim != 2:
            raise ValueError(f"label image {lab} must be 2-D, got shape {labels.shape}")
        inst += [(i, int(v)) for v in np.unique(labels) if v != 0]
    if max_instances is not None and max_instances < len(inst):
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(inst), size=max_instances, replace=False)
        inst = sorted(inst[j] for j in pick)
    return inst


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from .robot import evaluate_instance, make_method, summarize

    if args.max_clicks < 1:
        print("napari-fcfi evaluate: --max-clicks must be >= 1", file=sys.stderr)
        return 2
    try:
        pairs = list_pairs(args.images, args.labels, args.split)
        instances = list_instances(pairs, args.max_instances, args.seed)
    except ValueError as exc:
        print(f"napari-fcfi evaluate: {exc}", file=sys.stderr)
        return 2

    predictor, model_name = None, None
    if args.method.startswith("fcfi"):
        from .. import load_model
        from ..inference import Predictor

        model_name = args.model or "built-in"
        predictor = Predictor(load_model(args.model, device=args.device), device=args.device)
    method = make_method(args.method, predictor, model_name)

    all_ious, all_secs = [], []
    current, labels = None, None
    for idx, label_id in tqdm(instances, desc=f"evaluate {args.method}", unit="inst"):
        if idx != current:
            img_path, lab_path = pairs[idx]
            method.start(_read(img_path))
            labels = _read(lab_path)
            current = idx
        ious, secs = evaluate_instance(method, labels == label_id, args.max_clicks)
        all_ious.append(ious)
        all_secs.append(secs)
    result = summarize(
        all_ious,
        np.concatenate(all_secs) if all_secs else [],
        args.max_clicks,
        args.method,
        model_name,
    )
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
