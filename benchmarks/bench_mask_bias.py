"""Does the mask come out too large or too small, click after click?

The robot user of ``napari-fcfi evaluate`` clicks each validation object; after chosen
clicks this script records, per object-size bin, the predicted area over the true area
(median), the IoU of the probability map thresholded at several levels, and the IoU of
the 0.49 mask grown or shrunk by one pixel. A median area ratio below 1 together with a
better IoU at a lower threshold means that the masks shrink; above 1 with a better IoU at a
higher threshold, that they swell.

    python benchmarks/bench_mask_bias.py [--images DIR --labels DIR] [--model PATH] \
        [--max-instances 300] [--clicks 1 5] [--max-area 250] [--json out.json]

The defaults read the DSB2018 validation split from the shared data folder.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from scipy import ndimage as ndi

from napari_fcfi.evaluation.robot import SIZE_BINS, THRESHOLD, robot_answers
from napari_fcfi.masks import iou

THRESHOLDS = (0.3, THRESHOLD, 0.7)
AREA_BINS = (*SIZE_BINS, np.inf)


def object_rows(method, gt: np.ndarray, clicks_at, threshold: float = THRESHOLD) -> list[dict]:
    """Robot-user clicks on one object; a row for each click number in ``clicks_at``."""
    want = sorted(set(int(k) for k in clicks_at))
    area = int(gt.sum())
    rows = []
    for clicks, prob, pred, _ in robot_answers(method, gt, want[-1], threshold):
        k = len(clicks)
        if k not in want:
            continue
        row = {"area": area, "click": k, "area_ratio": float(pred.sum() / area)}
        for t in THRESHOLDS:
            row[f"iou@{t}"] = iou(prob > t, gt)
        row["iou_grown"] = iou(ndi.binary_dilation(pred), gt)
        row["iou_shrunk"] = iou(ndi.binary_erosion(pred), gt)
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per (area bin, click): count, median area ratio and mean IoUs."""
    out = []
    for lo, hi in zip(AREA_BINS[:-1], AREA_BINS[1:]):
        for k in sorted({r["click"] for r in rows}):
            sel = [r for r in rows if lo <= r["area"] < hi and r["click"] == k]
            if not sel:
                continue
            entry = {"area": f"{lo}-{hi}" if np.isfinite(hi) else f">={lo}", "click": k}
            entry["n"] = len(sel)
            entry["area_ratio_median"] = float(np.median([r["area_ratio"] for r in sel]))
            for key in [f"iou@{t}" for t in THRESHOLDS] + ["iou_grown", "iou_shrunk"]:
                entry[key] = float(np.mean([r[key] for r in sel]))
            out.append(entry)
    return out


def main(argv=None) -> int:
    from _protocol import add_protocol_arguments, method_objects

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_protocol_arguments(p)
    p.add_argument("--model", default=None, help="weights (default: the built-in model)")
    p.add_argument("--clicks", type=int, nargs="+", default=[1, 5])
    p.add_argument("--max-area", type=float, default=np.inf, help="skip larger objects (px²)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if not args.labels.is_dir():
        print(f"bench_mask_bias: no label folder {args.labels}", file=sys.stderr)
        return 2
    if min(args.clicks) < 1:
        print("bench_mask_bias: --clicks must be >= 1", file=sys.stderr)
        return 2

    import torch

    from napari_fcfi.evaluation.robot import FcfiMethod
    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    torch.set_num_threads(args.threads)
    method = FcfiMethod(Predictor(load_model(args.model)))
    rows = []
    for gt in method_objects(args, method):
        if gt.sum() < args.max_area:
            rows.extend(object_rows(method, gt, args.clicks))
    table = summarize(rows)
    cols = ["n", "area_ratio_median"] + [f"iou@{t}" for t in THRESHOLDS]
    cols += ["iou_grown", "iou_shrunk"]
    print("area click " + " ".join(cols))
    for e in table:
        vals = " ".join(f"{e[c]:.3f}" if isinstance(e[c], float) else str(e[c]) for c in cols)
        print(f"{e['area']} {e['click']} {vals}")
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
