"""Clicks on a 20,000 x 20,000 zarr-backed image: time per click and memory.

A uint16 image of ``--size`` x ``--size`` pixels is written to a zarr store (1024 x 1024
chunks; bright nuclei on a noisy background near the centre, flat elsewhere so the store
stays small), then segmented through the annotation editor exactly as the widget does:
planes are read with the widget's plane reader (:func:`napari_fcfi._layers.plane_reader`
semantics: a lazy plane, one intensity range from a bounded sample), and the labels are
an in-memory uint32 array: in the editor's array store (``--store array``, the default) or
in a napari Labels layer through the widget's store (``--store napari``: napari's own
history and display updates included; no viewer window). Reported: click p50/p95 (first
and later clicks), the peak resident memory above the state before the first click, and
the same for a 512 x 512 image for the latency ratio.

    python benchmarks/bench_large_image.py [--size 20000] [--threads 2] [--json out.json]
    python benchmarks/bench_large_image.py --store napari
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the resident set size every 5 ms in a thread; ``peak`` in MiB."""

    def __init__(self):
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


NUCLEI = [(0, 0, 22), (-45, 40, 15), (35, -38, 18), (60, 60, 20)]


def write_image(path: Path, size: int):
    import zarr

    arr = zarr.create_array(
        str(path), shape=(size, size), chunks=(1024, 1024), dtype="uint16", fill_value=400
    )
    c = size // 2
    rng = np.random.default_rng(0)
    half = 160
    patch = rng.normal(400, 40, (2 * half, 2 * half)).astype(np.float32)
    yy, xx = np.mgrid[-half:half, -half:half]
    for dy, dx, r in NUCLEI:
        patch += ((yy - dy) ** 2 + (xx - dx) ** 2 <= r * r) * 2500.0
    arr[c - half : c + half, c - half : c + half] = np.clip(patch, 0, 65535).astype(np.uint16)
    return zarr.open_array(str(path), mode="r")


def run_clicks(image, size: int, repeats: int, model, store_kind: str = "array") -> dict:
    from napari_fcfi.annotation.editor import AnnotationEditor
    from napari_fcfi.annotation.predictors import INJECTED, PredictorCache, PredictorSettings
    from napari_fcfi.annotation.store import ArrayLabelStore
    from napari_fcfi.inference.inputs import PreparedImage
    from napari_fcfi.inference.lazy import PlaneView
    from napari_fcfi.inference.normalize import sample_intensity_range

    intensity = sample_intensity_range(image, "auto")

    def read(key):
        return PreparedImage(PlaneView(image, tuple(key)), "auto", intensity=intensity)

    labels = np.zeros((size, size), np.uint32)
    if store_kind == "napari":
        from napari.layers import Labels

        from napari_fcfi._qt.store import NapariLabelStore

        store = NapariLabelStore(Labels(labels))
    else:
        store = ArrayLabelStore(labels)
    editor = AnnotationEditor(
        predictors=PredictorCache(model=model, threads=None),
        settings=PredictorSettings(source=INJECTED, device="cpu"),
    )
    editor.attach(store, read, (size, size))
    c = size // 2
    clicks = [(0, 0, True), (-18, 5, True), (10, 30, False), (19, -4, True)]
    editor.click((), c + 60, c + 60)  # warm-up object
    editor.finish()
    first, later, ok = [], [], True
    base = rss_mb()
    with PeakRSS() as peak:
        for _ in range(repeats):
            for k, (dy, dx, pos) in enumerate(clicks):
                t0 = time.perf_counter()
                editor.click((), c + dy, c + dx, pos)
                (first if k == 0 else later).append(time.perf_counter() - t0)
            ok = ok and bool(labels[c, c])
            editor.reset()
            editor.finish()
    return {
        "first_click_p50": float(np.median(first)),
        "later_clicks_p50": float(np.median(later)),
        "later_clicks_p95": float(np.percentile(later, 95)),
        "peak_mb_above_start": float(peak.peak - base),
        "labels_mb": labels.nbytes / 2**20,
        "segmented": ok,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--store", choices=("array", "napari"), default="array")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from napari_fcfi.model.io import load_model

    torch.set_num_threads(args.threads)
    model = load_model(device="cpu")
    out = {
        "load_average_before": os.getloadavg()[0],
        "threads": args.threads,
        "store": args.store,
    }
    with tempfile.TemporaryDirectory() as tmp:
        small = write_image(Path(tmp) / "small.zarr", 512)
        out["512"] = run_clicks(small, 512, args.repeats, model, args.store)
        big = write_image(Path(tmp) / "big.zarr", args.size)
        out[str(args.size)] = run_clicks(big, args.size, args.repeats, model, args.store)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for key in ("512", str(args.size)):
        r = out[key]
        print(
            f"{key}x{key}: first click p50 {r['first_click_p50'] * 1000:.0f} ms, later p50 "
            f"{r['later_clicks_p50'] * 1000:.0f} ms (p95 {r['later_clicks_p95'] * 1000:.0f}); "
            f"peak memory +{r['peak_mb_above_start']:.0f} MB above the state before the "
            f"clicks (labels array {r['labels_mb']:.0f} MB); segmented: {r['segmented']}"
        )
    ratio = out[str(args.size)]["later_clicks_p50"] / out["512"]["later_clicks_p50"]
    out["later_click_ratio"] = ratio
    print(f"later-click p50 ratio {args.size}^2 / 512^2: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
