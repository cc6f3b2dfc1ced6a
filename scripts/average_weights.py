"""Average the weights of several training chunks of one lineage ("weight averaging").

    python scripts/average_weights.py runs/a/fcfi-lite.safetensors runs/b/fcfi-lite.safetensors \
        --images D/images --labels D/labels --images U/images --labels U/labels \
        --out runs/avg/fcfi-lite.safetensors

The inputs are the float32 final weights of training runs (``napari-fcfi train --out``) of
one lineage, all of the same architecture: successive chunks (each continues the one
before), sibling chunks (each continues the same weights, with another seed), or both.
Their parameters are averaged with equal weight; the BatchNorm statistics of the average
are then re-estimated on training batches drawn as in training (the training splits of the
given folders only), because an average of the inputs' statistics does not describe the
averaged network.

The output is float32 with the newest input's training record plus ``average_of`` (each
input's name and samples); its ``samples_total`` counts every training sample behind the
average once (:func:`samples_behind`) and its ``wall_time_s`` the training time of every
chunk the newest input's record does not already count, so ``scripts/package_weights.py``
turns it into the shipped files like any run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", help="float32 weights of a training run (*.safetensors)")
    p.add_argument("--images", action="append", required=True, help="training image folder")
    p.add_argument("--labels", action="append", required=True, help="training label folder")
    p.add_argument("--out", required=True, help="where to write the average (*.safetensors)")
    p.add_argument("--bn-batches", type=int, default=40, help="batches of the BatchNorm estimate")
    p.add_argument("--seed", type=int, default=0, help="seed of the BatchNorm batches")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    if len(args.weights) < 2:
        print("error: give at least two weights files to average", file=sys.stderr)
        return 2
    if len(args.images) != len(args.labels):
        print(
            f"error: {len(args.images)} --images but {len(args.labels)} --labels folders",
            file=sys.stderr,
        )
        return 2
    if args.bn_batches < 1:
        print("error: --bn-batches must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.suffix != ".safetensors":
        print(f"error: --out must end in .safetensors, got {out.name}", file=sys.stderr)
        return 2
    for folder in args.images + args.labels:
        if not Path(folder).is_dir():
            print(f"error: folder {folder} not found", file=sys.stderr)
            return 2

    import numpy as np
    import torch

    from napari_fcfi.model.io import CheckpointError
    from napari_fcfi.model.lite import config_path, load_lite, save_lite

    torch.set_num_threads(args.threads)
    models, records = [], []
    for w in args.weights:
        try:
            model = load_lite(w)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        record = json.loads(config_path(w).read_text()).get("training")
        if not record or "samples_total" not in record:
            print(f"error: {config_path(w)} has no training record", file=sys.stderr)
            return 2
        models.append(model)
        records.append(record)
    ref = models[0].config()["params"]
    for w, m in zip(args.weights[1:], models[1:]):
        if m.config()["params"] != ref:
            print(f"error: {w} has another architecture than {args.weights[0]}", file=sys.stderr)
            return 2

    newest = max(range(len(models)), key=lambda i: records[i]["samples_total"])
    model = models[newest]
    states = [m.state_dict() for m in models]
    avg = {}
    for k, v in states[newest].items():
        if v.is_floating_point():
            avg[k] = torch.stack([s[k] for s in states]).mean(0)
        else:
            avg[k] = v  # BatchNorm batch counters: re-estimated below anyway
    model.load_state_dict(avg)

    t0 = time.perf_counter()
    _reestimate_bn(model, args, records[newest], np.random.default_rng(args.seed))
    record = dict(records[newest])
    record["samples_total"] = samples_behind(records, newest)
    record["average_of"] = [
        {"weights": str(w), "samples_total": r["samples_total"]}
        for w, r in zip(args.weights, records)
    ]
    record["bn_batches"] = args.bn_batches
    branches = siblings(records, newest)
    record["wall_time_s"] = (
        float(record.get("wall_time_s", 0.0))
        + sum(float(records[i].get("wall_time_s", 0.0)) for i in branches)
        + time.perf_counter()
        - t0
    )
    save_lite(model.eval(), out, extra={"training": record})
    print(
        f"{out}: average of {len(models)} weights files, "
        f"{record['samples_total']:,} training samples behind them"
    )
    return 0


def siblings(records: list[dict], newest: int) -> list[int]:
    """The inputs whose training the newest input's record does not already count.

    A chunk's record holds its own ``samples`` and the ``samples_total`` at its end, so it
    started at ``samples_total - samples``. The newest chunk's record counts its ancestors:
    the input whose total is the start of the newest chunk, the input whose total is the
    start of that one's chunk, and so on. Every other input is a sibling branch (continued
    from weights on that lineage): its own chunk's samples and time add to the average's.
    """
    ends = [int(r["samples_total"]) for r in records]
    starts = [end - int(r.get("samples", 0)) for end, r in zip(ends, records)]
    ancestors = {newest}
    start = starts[newest]
    while start > 0:
        parent = next(
            (i for i in range(len(records)) if i not in ancestors and ends[i] == start), None
        )
        if parent is None:
            break
        ancestors.add(parent)
        start = starts[parent]
    return [i for i in range(len(records)) if i not in ancestors]


def samples_behind(records: list[dict], newest: int) -> int:
    """Training samples behind an average: the newest input's total plus its siblings' chunks."""
    extra = sum(int(records[i].get("samples", 0)) for i in siblings(records, newest))
    return int(records[newest]["samples_total"]) + extra


def _reestimate_bn(model, args, record: dict, rng) -> None:
    """BatchNorm statistics of ``model`` from training batches drawn as in its training."""
    import torch

    from napari_fcfi.training.simulation import recalibrate_bn
    from napari_fcfi.training.trainer import TrainConfig, load_datasets, training_generator

    cfg = TrainConfig(
        images=list(args.images),
        labels=list(args.labels),
        out=str(args.out),
        crop=int(record.get("crop", 128)),
        batch=int(record.get("batch", 8)),
        max_robot_clicks=int(record.get("max_robot_clicks", 3)),
        scale_mode=record.get("scale_mode", "object"),
        seed=args.seed,
    )
    gen = training_generator(cfg, load_datasets(cfg))
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    recalibrate_bn(model, gen, rng, cfg, args.bn_batches)
    model.to(memory_format=torch.contiguous_format)


if __name__ == "__main__":
    sys.exit(main())
