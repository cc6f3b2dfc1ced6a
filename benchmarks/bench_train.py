"""Training throughput: samples per second of the FCFI-Lite trainer on the CPU.

Runs ``--steps`` real optimisation steps (data sampling with augmentation, 0..N simulated
robot clicks without gradients, the training pass and the Adam update) in a temporary work
folder and reports the median and mean seconds per step after ``--warmup`` steps, and
samples/s. Run it on a quiet machine (the load average is printed) with nothing else
running: the trainer owns every core it is given.

    python benchmarks/bench_train.py --images D/images --labels D/labels \
        --crop 160 --batch 8 --threads 2 [--bf16] [--no-channels-last] [--half-res-refine] \
        [--workers N] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", action="append", required=True)
    p.add_argument("--labels", action="append", required=True)
    p.add_argument("--crop", type=int, default=160)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--half-res-refine", action="store_true")
    p.add_argument("--scale-mode", default="object", choices=["object", "image"])
    p.add_argument("--max-robot-clicks", type=int, default=3)
    p.add_argument("--freeze-blocks", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="batch worker processes")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto, ...")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]

    from napari_fcfi.training.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            images=args.images,
            labels=args.labels,
            out=str(Path(tmp) / "w.safetensors"),
            init="builtin",
            steps=args.steps,
            crop=args.crop,
            batch=args.batch,
            threads=args.threads,
            val_fraction=0.0,  # no validation: every timed step is a training step
            val_every=10**9,
            ckpt_every=10**9,
            bf16=args.bf16,
            channels_last=not args.no_channels_last,
            scale_mode=args.scale_mode,
            max_robot_clicks=args.max_robot_clicks,
            freeze_blocks=args.freeze_blocks,
            workers=args.workers,
            device=args.device,
            model_params={"half_res_refine": True} if args.half_res_refine else {},
        )
        train(cfg, progress=False)
        recs = [json.loads(line) for line in (Path(tmp) / "w.run" / "log.jsonl").open()]
    times = [r["s_per_step"] for r in recs[args.warmup :]]
    data = [r["s_data"] for r in recs[args.warmup :]]
    med, mean = statistics.median(times), statistics.mean(times)
    print(
        json.dumps(
            {
                "crop": args.crop,
                "batch": args.batch,
                "threads": args.threads,
                "bf16": args.bf16,
                "channels_last": not args.no_channels_last,
                "half_res_refine": args.half_res_refine,
                "freeze_blocks": args.freeze_blocks,
                "max_robot_clicks": args.max_robot_clicks,
                "workers": args.workers,
                "device": args.device,
                "steps_timed": len(times),
                "s_per_step_median": round(med, 3),
                "s_per_step_mean": round(mean, 3),
                "s_data_mean": round(statistics.mean(data), 3),
                "samples_per_s": round(args.batch / mean, 1),
                "loadavg_before": load_before,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
