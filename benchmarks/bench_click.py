"""Seconds per click of the interactive engine on a small and a huge image.

For each image size, ``--repeats`` fresh sessions each get ``--clicks`` clicks on a
synthetic nucleus near the centre; the first click (a fresh zoom state) and the later
clicks (zoom-in) are timed separately, and the image preparation (validation and
normalisation range, done once per image) on its own. Prints p50/p95 and optionally
writes JSON.

``--background-load N`` keeps N other processes busy (pure-Python spin loops, one core
each) while the clicks are timed: how a click fares on a machine that is busy elsewhere.
``--threads auto`` is the widget's policy (:class:`napari_fcfi.cores.ThreadPolicy`: the
free cores, re-read at every click); a number fixes torch's threads.

    python benchmarks/bench_click.py                       # built-in model
    python benchmarks/bench_click.py --model stub          # analytic stand-in network
    python benchmarks/bench_click.py --model w1-h18s --target-size 700   # HRNet-W18 timing
    python benchmarks/bench_click.py --model path/to/checkpoint --sizes 512 8000
    python benchmarks/bench_click.py --sizes 512 --threads auto --background-load 1
    python benchmarks/bench_click.py --sizes 512 --preset nuclei   # a preset's settings
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

import numpy as np


def synthetic_image(size: int, seed: int = 0) -> np.ndarray:
    """uint16 (size, size) image: noisy background and bright nuclei around the centre."""
    rng = np.random.default_rng(seed)
    img = rng.normal(400, 40, (size, size)).astype(np.float32)
    c = size // 2
    yy, xx = np.mgrid[-60:61, -60:61]
    for dy, dx, r in [(0, 0, 22), (-45, 40, 15), (35, -38, 18)]:
        blob = ((yy - dy) ** 2 + (xx - dx) ** 2 <= r * r) * 2500.0
        img[c - 60 : c + 61, c - 60 : c + 61] += blob
    return np.clip(img, 0, 65535).astype(np.uint16)


def _spin() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


def start_background_load(n: int) -> list:
    """``n`` processes that each keep one core busy until terminated."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let the scheduler and the load average see them
    return procs


def _threads(value: str):
    return value if value == "auto" else int(value)


CLICKS = [(0, 0, True), (-18, 5, True), (10, 30, False), (19, -4, True), (-5, -25, False)]


def load(model: str | None, device):
    import napari_fcfi

    if model == "stub":
        from _testnets import StubNet

        return StubNet(), "StubNet"
    if model in ("w1-h18s", "w1-r101"):  # conformance architectures, synthetic W1 weights
        from _testnets import apply_w1

        if model == "w1-h18s":
            from napari_fcfi.model.hrnet_model import HRNetModel

            net = HRNetModel(width=18, ocr_width=48, mid_ch=64)
        else:
            from napari_fcfi.model.deeplab import DeeplabModel

            net = DeeplabModel(aspp_dropout=0.2)
        return apply_w1(net).eval(), model
    return napari_fcfi.load_model(model, device=device), model or "built-in"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        default=None,
        help="'stub', 'w1-h18s', 'w1-r101', a model name or a checkpoint path (default: built-in)",
    )
    ap.add_argument("--target-size", type=int, default=None, help="zoom_in_target_size")
    ap.add_argument(
        "--flip-axes",
        choices=["x", "xy", "xyt"],
        default=None,
        help="flip averaging (default: model's)",
    )
    ap.add_argument("--preset", default=None, help="the model's preset, e.g. nuclei")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 8000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=5, choices=range(2, len(CLICKS) + 1))
    ap.add_argument("--threads", type=_threads, default=2, help="a number, or 'auto'")
    ap.add_argument("--background-load", type=int, default=0, metavar="N")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from napari_fcfi import Predictor
    from napari_fcfi.cores import ThreadPolicy

    policy = ThreadPolicy(None if args.threads == "auto" else args.threads)
    policy.apply()
    net, model_name = load(args.model, args.device)
    predictor = Predictor(
        net,
        device=args.device,
        zoom_in_target_size=args.target_size,
        flip_axes=args.flip_axes,
        preset=args.preset,
    )
    results = {
        "model": model_name,
        "device": str(predictor.device),
        "threads": args.threads,
        "background_load": args.background_load,
        "load_average_before": os.getloadavg()[0],
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "zoom_in_target_size": predictor.zoom_in_target_size,
        "flip_axes": predictor.flip_axes,
        "preset": args.preset,
        "sizes": {},
    }
    background = start_background_load(args.background_load)
    threads_used = []
    try:
        _measure(args, predictor, results, policy, threads_used)
    finally:
        for p in background:
            p.terminate()
    results["threads_used"] = sorted(set(threads_used))
    print(f"torch threads used: {results['threads_used']}, background load {args.background_load}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _measure(args, predictor, results, policy, threads_used) -> None:
    from napari_fcfi import InteractiveSession
    from napari_fcfi.inference import PreparedImage

    for size in args.sizes:
        img = synthetic_image(size)
        c = size // 2
        # warm-up (allocator, lazy module init) on this size
        InteractiveSession(predictor, img).add_click(c, c, True)
        first, later, prep, cpu_first, cpu_later = [], [], [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            prepared = PreparedImage(img, predictor.normalize)  # what a new image costs
            prep.append(time.perf_counter() - t0)
            session = InteractiveSession(predictor, prepared)
            for k, (dy, dx, pos) in enumerate(CLICKS[: args.clicks]):
                t0, c0 = time.perf_counter(), time.process_time()
                threads_used.append(policy.apply())
                session.add_click(c + dy, c + dx, pos)
                (first if k == 0 else later).append(time.perf_counter() - t0)
                (cpu_first if k == 0 else cpu_later).append(time.process_time() - c0)
        row = {}
        for name, vals in (("prepare", prep), ("first_click", first), ("later_clicks", later)):
            row[name] = {
                "p50": float(np.percentile(vals, 50)),
                "p95": float(np.percentile(vals, 95)),
                "n": len(vals),
            }
        # CPU seconds (all threads) per click: robust to other jobs sharing the machine
        row["cpu_first_click_p50"] = float(np.median(cpu_first))
        row["cpu_later_clicks_p50"] = float(np.median(cpu_later))
        results["sizes"][str(size)] = row
        print(
            f"{size}x{size}: prepare p50 {row['prepare']['p50']:.3f}s | first click p50 "
            f"{row['first_click']['p50']:.3f}s p95 {row['first_click']['p95']:.3f}s | later "
            f"clicks p50 {row['later_clicks']['p50']:.3f}s p95 {row['later_clicks']['p95']:.3f}s"
            f" | CPU s/click p50 first {row['cpu_first_click_p50']:.3f} later "
            f"{row['cpu_later_clicks_p50']:.3f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
