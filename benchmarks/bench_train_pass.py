"""One training pass of the built-in network, without the rest of a training step.

Times the forward and backward pass in training mode (stem and the first ``--freeze-blocks``
blocks frozen, as the trainer does) and the no-gradient pass in eval mode that simulates a
robot click, on random 128 px inputs, for float32 or bfloat16 autocast, with or without
``torch.compile``. Separates the network's cost from sampling, clicks and the optimiser
(``bench_train.py`` times whole steps). Run it on a quiet machine.

    python benchmarks/bench_train_pass.py --batch 8 --threads 2 [--bf16] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--freeze-blocks", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    args = p.parse_args(argv)

    import torch

    from napari_fcfi.model.lite import BUILTIN_WEIGHTS, load_lite
    from napari_fcfi.training.setup import freeze_early_backbone

    load_before = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    model = load_lite(BUILTIN_WEIGHTS).to(memory_format=torch.channels_last)
    freeze_early_backbone(model, args.freeze_blocks)
    net = torch.compile(model) if args.compile else model
    b, s = args.batch, args.crop
    img = torch.rand(b, 3, s, s).contiguous(memory_format=torch.channels_last)
    prev = torch.rand(b, 1, s, s)
    pts = torch.tensor([[[s / 2, s / 2, 0.0], [-1.0, -1.0, -1.0]]]).repeat(b, 1, 1)
    new = pts[:, :1].clone()
    gate = torch.ones(b)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    t_first = time.perf_counter()
    train_s, eval_s = [], []
    for i in range(args.warmup + args.repeats):
        model.train()
        t = time.perf_counter()
        with autocast():
            out = net(img, prev, pts, new, gate)
        sum(v.float().mean() for v in out.values()).backward()
        t1 = time.perf_counter()
        model.eval()
        with torch.inference_mode(), autocast():
            net(img, prev, pts, new, gate)
        t2 = time.perf_counter()
        if i == 0:
            first_s = t2 - t_first
        if i >= args.warmup:
            train_s.append(t1 - t)
            eval_s.append(t2 - t1)
    tr, ev = statistics.median(train_s), statistics.median(eval_s)
    print(
        json.dumps(
            {
                "batch": b,
                "crop": s,
                "threads": args.threads,
                "bf16": args.bf16,
                "compile": args.compile,
                "train_pass_s_median": round(tr, 4),
                "train_pass_samples_per_s": round(b / tr, 1),
                "eval_pass_s_median": round(ev, 4),
                "first_iteration_s": round(first_s, 1),
                "loadavg_before": round(load_before, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
