"""Do the answers obey their clicks?

The robot user of ``napari-fcfi evaluate`` clicks each validation object ``--max-clicks``
times. After every answer this script checks the binarised mask (at the predictor's own
thresholds) against every click placed so far: a positive click must lie inside the mask, a
negative one outside. Per object-size bin it reports the share of answers that contradict
their newest click, the share that contradict at least one earlier click, and the share of
earlier clicks contradicted; each both before and after the object first reached 90 % IoU
(after that the robot's clicks fall on the last one-pixel disagreements).

If most answers obey their clicks, the clicks the robot spends are lost to the boundary
the network draws between them, not to clicks it ignores; a test-time scheme that forces the
answer to agree with the clicks then has little to fix.

    python benchmarks/bench_click_agreement.py [--images DIR --labels DIR] [--model NAME]
        [--preset nuclei] [--max-instances 300] [--seed 0] [--max-clicks 20] [--json out.json]

The defaults read the DSB2018 validation split from the shared data folder.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from napari_fcfi.evaluation.robot import SIZE_BINS, iou, robot_answers

AREA_BINS = (*SIZE_BINS, np.inf)
PHASES = ("before 90 %", "after 90 %")


def object_rows(method, gt: np.ndarray, max_clicks: int) -> list[dict]:
    """One row per answer of the robot loop on one object: whether it contradicts its newest
    click and how many earlier clicks it contradicts (``method`` as in
    :func:`napari_fcfi.evaluation.robot.robot_answers`)."""
    area = int(np.count_nonzero(gt))
    reached = False
    rows = []
    for clicks, _, pred, _ in robot_answers(method, gt, max_clicks):
        wrong = [bool(pred[y, x]) != bool(positive) for y, x, positive in clicks]
        rows.append(
            {
                "area": area,
                "click": len(clicks),
                "phase": PHASES[int(reached)],
                "newest_wrong": wrong[-1],
                "earlier": len(wrong) - 1,
                "earlier_wrong": int(sum(wrong[:-1])),
            }
        )
        reached = reached or iou(gt, pred) >= 0.9
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per (area bin or ``all``, phase): answers, share contradicting the newest click, share
    contradicting an earlier one, share of earlier clicks contradicted."""
    out = []
    bins = [
        (f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}", lo, hi)
        for lo, hi in zip(AREA_BINS[:-1], AREA_BINS[1:])
    ]
    for name, lo, hi in [("all", 0, np.inf), *bins]:
        for phase in PHASES:
            sel = [r for r in rows if lo <= r["area"] < hi and r["phase"] == phase]
            if not sel:
                continue
            earlier = sum(r["earlier"] for r in sel)
            out.append(
                {
                    "area": name,
                    "phase": phase,
                    "answers": len(sel),
                    "newest_wrong": float(np.mean([r["newest_wrong"] for r in sel])),
                    "any_earlier_wrong": float(np.mean([r["earlier_wrong"] > 0 for r in sel])),
                    "earlier_wrong": sum(r["earlier_wrong"] for r in sel) / earlier
                    if earlier
                    else 0.0,
                }
            )
    return out


def main(argv=None) -> int:
    from _protocol import (
        add_method_arguments,
        add_protocol_arguments,
        method_objects,
        protocol_method,
    )

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_protocol_arguments(p)
    add_method_arguments(p)
    args = p.parse_args(argv)
    if not args.labels.is_dir():
        print(f"bench_click_agreement: no label folder {args.labels}", file=sys.stderr)
        return 2
    method, _ = protocol_method(args)
    rows = []
    for gt in method_objects(args, method):
        rows.extend(object_rows(method, gt, args.max_clicks))
    table = summarize(rows)
    print("area phase answers newest_wrong any_earlier_wrong earlier_wrong")
    for e in table:
        print(
            f"{e['area']} {e['phase'].replace(' ', '')} {e['answers']} {e['newest_wrong']:.3f} "
            f"{e['any_earlier_wrong']:.3f} {e['earlier_wrong']:.3f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
