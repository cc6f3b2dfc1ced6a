"""Propagation through the ``nuclei3d`` sample against its reference nuclei.

Every reference nucleus (20 in the 36 x 128 x 128 stack) is started on the slice where it
is largest, from the model's own mask of one centre click, and carried up and down with the
default stop rules. Reports the share of nuclei whose propagated z-extent is within one
slice of the reference, the "ghost" masks on slices where the reference nucleus is absent,
the mean per-slice IoU and why each direction stopped.

    python benchmarks/bench_propagation.py [--model PATH] [--no-evidence] \\
        [--iou-threshold T] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument(
        "--no-evidence", action="store_true", help="turn off the image-evidence stop rule"
    )
    p.add_argument("--iou-threshold", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from napari_fcfi._sample_data import load_sample, reference_labels
    from napari_fcfi.evaluation.propagation import evaluate_propagation, summarize
    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    torch.set_num_threads(args.threads)
    stack = np.asarray(load_sample("nuclei3d")[0][0])
    labels = reference_labels("nuclei3d")
    options = {}
    if args.no_evidence:
        options["evidence"] = False
    if args.iou_threshold is not None:
        options["iou_threshold"] = args.iou_threshold
    predictor = Predictor(load_model(args.model))
    rows = evaluate_propagation(predictor, stack, labels, **options)
    summary = summarize(rows) | {"options": options}
    for r in rows:
        print(
            f"nucleus {r.label:2d}: reference z {r.ref_first:2d}-{r.ref_last:2d}, propagated "
            f"{r.first:2d}-{r.last:2d} from {r.start:2d} (error {r.extent_error}), "
            f"ghosts {len(r.ghosts)}, IoU {r.mean_iou:.2f}, stopped: "
            + ", ".join(f"{k} {v}" for k, v in r.reasons.items())
        )
    reasons = Counter(v for r in rows for v in r.reasons.values())
    print(
        f"{summary['objects']} nuclei: {summary['within_tolerance']:.0%} within 1 slice of the "
        f"reference extent; {summary['ghost_slices']} ghost slices on "
        f"{summary['objects_with_ghosts']} nuclei; mean IoU {summary['mean_iou']:.3f}; "
        f"stop reasons {dict(reasons)}"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
