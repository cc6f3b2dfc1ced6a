"""How much IoU can the network's output grid itself cost?

The network answers at a fraction of its input (1/4 for the coarse head, 1/2 with the
shipped boundary refinement); the answer is resized to the input and pasted into the view
box. This script asks what the *best possible* answer on each grid would score: the true
mask of each validation object is presented in the view that the predictor would use
(the first click's box, ``first_click_expansion_ratio`` times the object, or a later
click's zoom-in box, ``zoom_in_expansion_ratio`` times it; at least
``zoom_in_min_crop_size``, resized to ``zoom_in_target_size``), averaged down to the
output grid, resized back exactly as the predictor resizes the network's answer, and read
at 0.5. Whatever IoU is lost here, no network with that output grid can recover; a finer
output path can only gain what the grid loses.

    python benchmarks/bench_output_grid.py [--images DIR --labels DIR] [--model NAME|PATH] \
        [--max-instances 300] [--seed 0] [--json out.json]

The defaults read the DSB2018 validation split from the shared data folder and take the
view settings from the default built-in model; the instances are the robot-user
benchmark's (``napari-fcfi evaluate --max-instances N --seed S``). Also printed: the
one-pixel reference (a perfect mask grown by one pixel).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from napari_fcfi.evaluation.robot import SIZE_BINS, one_pixel_reference
from napari_fcfi.inference.maps import bbox
from napari_fcfi.masks import iou

#: output grids: the network input's size divided by this
GRIDS = {"1/4": 4, "1/2": 2, "1/1": 1}
AREA_BINS = (*SIZE_BINS, np.inf)


def best_answer(gt: np.ndarray, box, net_hw, factor: int) -> np.ndarray:
    """The true mask seen in ``box`` resized to ``net_hw``, averaged to 1/``factor`` of it,
    resized back to ``net_hw`` and then to the box (bilinear, ``align_corners=True``, as
    the network and the predictor resize), read at 0.5 and pasted into an empty image."""
    import torch
    import torch.nn.functional as F

    r0, r1, c0, c1 = box
    crop = torch.from_numpy(gt[r0 : r1 + 1, c0 : c1 + 1].astype(np.float32))[None, None]
    net = F.interpolate(crop, size=net_hw, mode="bilinear", align_corners=True)
    if factor > 1:
        small = (-(-net_hw[0] // factor), -(-net_hw[1] // factor))
        net = F.interpolate(net, size=small, mode="area")
        net = F.interpolate(net, size=net_hw, mode="bilinear", align_corners=True)
    back = F.interpolate(net, size=crop.shape[-2:], mode="bilinear", align_corners=True)
    out = np.zeros(gt.shape, bool)
    out[r0 : r1 + 1, c0 : c1 + 1] = back[0, 0].numpy() > 0.5
    return out


def object_rows(gt: np.ndarray, rules, first_expansion: float) -> list[dict]:
    """One row per (view, grid) for one object: its area and the best answer's IoU."""
    extent = bbox(gt)
    views = {
        "first click": rules.zoom_view(rules.extent_roi(gt.shape, extent, [], first_expansion)),
        "later clicks": rules.zoom_view(rules.extent_roi(gt.shape, extent, [])),
    }
    area = int(gt.sum())
    rows = []
    for vname, view in views.items():
        for gname, factor in GRIDS.items():
            pred = best_answer(gt, view.box, view.net_hw, factor)
            rows.append({"area": area, "view": vname, "grid": gname, "iou": iou(pred, gt)})
    grown, _ = one_pixel_reference(gt)
    rows.append({"area": area, "view": "one-pixel reference", "grid": "-", "iou": grown})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per (view, grid, area bin): count, mean IoU, the share at >= 0.85 and >= 0.90."""
    out = []
    keys = list(dict.fromkeys((r["view"], r["grid"]) for r in rows))
    for lo, hi in [(0, np.inf), *zip(AREA_BINS[:-1], AREA_BINS[1:])]:
        for view, grid in keys:
            sel = [
                r["iou"]
                for r in rows
                if r["view"] == view and r["grid"] == grid and lo <= r["area"] < hi
            ]
            if not sel:
                continue
            v = np.asarray(sel)
            out.append(
                {
                    "area": "all"
                    if (lo, hi) == (0, np.inf)
                    else (f"{lo}-{hi}" if np.isfinite(hi) else f">={lo}"),
                    "view": view,
                    "grid": grid,
                    "n": int(v.size),
                    "mean_iou": float(v.mean()),
                    "share_85": float((v >= 0.85).mean()),
                    "share_90": float((v >= 0.90).mean()),
                }
            )
    return out


def main(argv=None) -> int:
    from _protocol import add_protocol_arguments, protocol_objects

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_protocol_arguments(p)
    p.add_argument(
        "--model",
        default=None,
        help="weights whose view settings apply (default: the built-in model)",
    )
    args = p.parse_args(argv)
    if not args.labels.is_dir():
        print(f"bench_output_grid: no label folder {args.labels}", file=sys.stderr)
        return 2

    import torch

    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    torch.set_num_threads(1)
    predictor = Predictor(load_model(args.model))  # its views, not its network, are used
    rules, first_expansion = predictor.view_rules, predictor.first_click_expansion_ratio
    rows = []
    for _, labels, ids in protocol_objects(args):
        for label_id in ids:
            rows.extend(object_rows(labels == label_id, rules, first_expansion))
    table = summarize(rows)
    print(
        f"views: target {rules.target_size} px, first click x{first_expansion}, later clicks "
        f"x{rules.expansion_ratio}, at least {rules.min_crop_size} px"
    )
    print("area | view | grid | n | mean IoU | share >= 0.85 | share >= 0.90")
    for e in table:
        print(
            f"{e['area']} | {e['view']} | {e['grid']} | {e['n']} | {e['mean_iou']:.3f} | "
            f"{e['share_85']:.2f} | {e['share_90']:.2f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
