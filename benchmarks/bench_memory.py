"""Extra memory of one click on a huge image whose feedback mask covers most of it.

An ``--size`` x ``--size`` uint16 image (default 8000) and a feedback map equal to 1 over a
centred square of ``--coverage`` of the image (default 90 %) are prepared first; then one
click is measured in two situations:

* ``first``: a first click with that mask as its feedback (a hand-painted label being
  corrected): the view grows to the mask's zoom-in ROI;
* ``zoom``: a second click whose feedback and zoom state hold the mask (the previous
  result): the official zoom-in view of the mask and the clicks.

Each click is what the editor does with it: the prediction, the object's mask at the view
box (``prob > threshold``, 1 byte per box pixel, what is written into the labels) and the
bounding box that the next click's zoom-in reads from the CFFM feedback.

For each, on Linux, the peak resident memory during the click above the memory before it
(``peak``; the kernel's high-water mark, reset before the click), the memory still held
after it by the click's result (``result``: the mask, and the probability and feedback
maps, which stay at the network's resolution on a view this large) and their difference
(``transient``: everything else -- the network input, the network, the strip-wise
resizes). ``arrays`` is the peak of numpy allocations (tracemalloc, a separate run of the
same click).

    python benchmarks/bench_memory.py                     # built-in model, 8000^2, 90 %
    python benchmarks/bench_memory.py --model stub        # analytic stand-in network
    python benchmarks/bench_memory.py --check 200         # exit 1 if a peak > 200 MB
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tracemalloc
from pathlib import Path

import numpy as np

MB = 2**20


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _page()


def _page() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def scene(size: int, coverage: float):
    """uint16 image with a bright square object, and the feedback map over ``coverage``."""
    from napari_fcfi.inference.maps import RoiMap

    rng = np.random.default_rng(0)
    img = rng.normal(400, 40, (size, size)).astype(np.float32)
    side = int(round(size * np.sqrt(coverage)))
    m = (size - side) // 2
    img[m : m + side, m : m + side] += 2500
    img = np.clip(img, 0, 65535).astype(np.uint16)
    data = np.ones((side, side), np.float32)
    return img, RoiMap((size, size), m, m, data)


def load(model: str | None, device):
    if model == "stub":
        from _testnets import StubNet

        return StubNet(), "StubNet"
    from napari_fcfi.model.io import load_model

    return load_model(model, device=device), model or "built-in"


def measure(fn) -> dict:
    """Peak and retained resident memory of ``fn()`` (MB), and its numpy peak."""
    gc.collect()
    before = _rss()
    exact = _reset_peak()
    result = fn()
    peak = _peak_rss() if exact else _rss()
    held = _rss()
    del result
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    arrays = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    gc.collect()
    out = {
        "peak": (peak - before) / MB,
        "result": (held - before) / MB,
        "arrays": arrays / MB,
        "exact_peak": exact,
    }
    out["transient"] = out["peak"] - out["result"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="'stub', a model name or a checkpoint path")
    ap.add_argument("--size", type=int, default=8000)
    ap.add_argument("--coverage", type=float, default=0.9, help="fraction of the image")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--check", type=float, default=None, metavar="MB", help="exit 1 if a peak exceeds MB"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.inference.views import ZoomState

    torch.set_num_threads(args.threads)
    net, model_name = load(args.model, args.device)
    predictor = Predictor(net, device=args.device)
    img, prev = scene(args.size, args.coverage)
    prepared = predictor.prepare_image(img)
    c = args.size // 2
    first = [(c, c, True)]
    second = first + [(c + 40, c - 30, True)]
    # warm-up: the network at the sizes the measured clicks use
    predictor.predict_roi(prepared, first, prev, ZoomState())
    predictor.predict_roi(prepared, second, prev, ZoomState(None, prev))
    predictor.last_prediction = None
    gc.collect()

    def click(clicks, feedback, state):
        def run():
            pred, new_state = predictor.predict_roi(prepared, clicks, feedback, state)
            predictor.last_prediction = None
            mask = pred.prob.above(predictor.threshold)
            next_box = new_state.prev_map.bbox_above(0.5)
            return pred, new_state, mask, next_box

        return run

    results = {
        "model": model_name,
        "size": args.size,
        "coverage": args.coverage,
        "threads": args.threads,
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "clicks": {},
    }
    cases = {
        "first": click(first, prev, ZoomState()),
        "zoom": click(second, prev, ZoomState(None, prev)),
    }
    failed = False
    for name, fn in cases.items():
        pred, _, mask, _ = fn()
        view = pred.view
        kinds = f"{type(pred.prob).__name__}, mask {mask.shape[0]}x{mask.shape[1]}"
        del pred, mask
        row = measure(fn)
        row["view_box"] = list(view.box)
        row["net_input"] = list(view.net_hw)
        row["maps"] = kinds
        results["clicks"][name] = row
        print(
            f"{name:>5} click, view {view.box[1] - view.box[0] + 1}x"
            f"{view.box[3] - view.box[2] + 1} -> {view.net_hw[0]}x{view.net_hw[1]}: "
            f"peak +{row['peak']:.0f} MB, result {row['result']:.0f} MB, transient "
            f"{row['transient']:.0f} MB, numpy arrays {row['arrays']:.0f} MB ({kinds})"
        )
        if args.check is not None and row["peak"] > args.check:
            failed = True
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if failed:
        print(f"peak memory above {args.check:g} MB")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
