"""One click per object: the IoU of the first-click mask, object by object.

For the ``nuclei2d`` sample (a DSB2018 validation image, nuclei about 55 px across), every
ground-truth nucleus that does not touch the image border and covers at least
``--min-area`` pixels gets one positive click at its centre (the pixel deepest inside it);
the mask of that single click is compared with the nucleus. The ground truth is the DSB2018
label image of the sample, read from ``--labels`` (default: the shared DSB2018 folder).

    python benchmarks/bench_first_click.py [--model PATH] [--first-click auto|window] \
        [--target-size N --min-crop N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_fcfi.masks import interior_point

SAMPLE_ID = "63d981a107091e1e"  # nuclei2d_large.tif
DEFAULT_LABELS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018"
DEFAULT_LABELS = DEFAULT_LABELS / "train" / "labels" / f"{SAMPLE_ID}.tif"


def centre_clicks(labels: np.ndarray, min_area: int) -> list[tuple[int, int, int]]:
    """(label id, y, x) of the deepest pixel of every object clear of the border."""
    out = []
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None or i in border:
            continue
        obj = labels[sl] == i
        if obj.sum() < min_area:
            continue
        y, x = interior_point(obj)
        out.append((i, int(y + sl[0].start), int(x + sl[1].start)))
    return out


def first_click_ious(predictor, image, labels, min_area: int = 100) -> list[dict]:
    rows = []
    prepared = predictor.prepare_image(image)
    for i, y, x in centre_clicks(labels, min_area):
        predictor.reset_state()
        prob = predictor.predict(prepared, [(y, x, True)])
        pred = prob > predictor.threshold
        gt = labels == i
        iou = np.count_nonzero(pred & gt) / max(np.count_nonzero(pred | gt), 1)
        rows.append(
            {
                "id": i,
                "y": y,
                "x": x,
                "area": int(gt.sum()),
                "pred_area": int(pred.sum()),
                "iou": float(iou),
            }
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    p.add_argument("--first-click", choices=["auto", "window"], default=None)
    p.add_argument("--target-size", type=int, default=None)
    p.add_argument("--min-crop", type=int, default=None)
    p.add_argument("--first-expansion", type=float, default=None)
    p.add_argument("--flip-axes", choices=["x", "xy", "xyt"], default=None)
    p.add_argument("--min-area", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import tifffile
    import torch

    from napari_fcfi._sample_data import load_sample
    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    if not args.labels.is_file():
        print(
            f"ground truth {args.labels} not found (needs the shared DSB2018 data)", file=sys.stderr
        )
        return 2
    torch.set_num_threads(args.threads)
    image = np.asarray(load_sample("nuclei2d")[0][0])
    labels = np.asarray(tifffile.imread(args.labels))
    predictor = Predictor(
        load_model(args.model),
        first_click=args.first_click,
        zoom_in_target_size=args.target_size,
        zoom_in_min_crop_size=args.min_crop,
        first_click_expansion_ratio=args.first_expansion,
        flip_axes=args.flip_axes,
    )
    rows = first_click_ious(predictor, image, labels, args.min_area)
    ious = np.array([r["iou"] for r in rows])
    summary = {
        "objects": len(rows),
        "mean_iou": float(ious.mean()),
        "min_iou": float(ious.min()),
        "max_iou": float(ious.max()),
        "first_click": predictor.first_click,
        "target_size": predictor.zoom_in_target_size,
        "min_crop": predictor.zoom_in_min_crop_size,
        "first_click_expansion": predictor.first_click_expansion_ratio,
        "flip_axes": predictor.flip_axes,
        "rows": rows,
    }
    print(
        f"nuclei2d: {len(rows)} nuclei, one centre click each: mean IoU {ious.mean():.3f} "
        f"(min {ious.min():.3f}, max {ious.max():.3f})"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
