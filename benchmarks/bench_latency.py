"""Click -> label latency of the FCFI widget vs the bare engine call.

For each object (nuclei found by Otsu thresholding of a sample image, largest first) the
benchmark clicks once at its interior point and once more (a second positive click near
the border, so that the zoom-in path is exercised), then finishes the object.

* **widget**: time from ``clicks_layer.add(point)`` on the GUI thread to the moment the
  widget has written that click's result into the Labels layer -- the napari ``thread_worker``
  hop, the read-back of the label (feedback), inference, and the history-aware write into
  the Labels layer included (measured when the write returns). The GUI thread waits in a Qt
  event loop (as in napari), not in a busy loop that would compete for the GIL.
* **engine**: the same clicks on a bare :class:`~napari_fcfi.InteractiveSession`
  (``add_click`` only).

Needs a display (run under ``xvfb-run -a``). Example::

    xvfb-run -a python benchmarks/bench_latency.py --model builtin --objects 15
    xvfb-run -a python benchmarks/bench_latency.py --model stub      # overhead only

``--model``: ``stub`` (analytic StubNet: widget overhead only), ``lite-random`` (the
FCFI-Lite architecture with random weights: the built-in model's speed without its
weights), ``builtin`` or a checkpoint path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def build_model(name: str):
    if name == "stub":
        from _testnets import StubNet

        return StubNet()
    if name == "lite-random":
        import torch

        from napari_fcfi.model.lite import FCFILite

        torch.manual_seed(0)
        return FCFILite().eval()
    import napari_fcfi

    return napari_fcfi.load_model(None if name == "builtin" else name, device="cpu")


def object_clicks(image: np.ndarray, n: int) -> list[list[tuple[int, int]]]:
    """Two clicks per object for the ``n`` largest Otsu objects of ``image``."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    from napari_fcfi.masks import interior_point

    gray = image if image.ndim == 2 else image[..., :3].mean(-1)
    lab = label(gray > threshold_otsu(gray))
    props = sorted(regionprops(lab), key=lambda p: -p.area)[:n]
    out = []
    for p in props:
        mask = lab == p.label
        y, x = interior_point(mask)
        inner = ndimage.binary_erosion(mask, iterations=2)
        ring = np.argwhere(inner) if inner.any() else np.argwhere(mask)
        far = ring[np.argmax(((ring - (y, x)) ** 2).sum(1))]
        out.append([(y, x), (int(far[0]), int(far[1]))])
    return out


def percentiles(values) -> dict:
    v = np.asarray(values) * 1000
    return {
        "n": int(v.size),
        "p50_ms": round(float(np.percentile(v, 50)), 1),
        "p95_ms": round(float(np.percentile(v, 95)), 1),
        "mean_ms": round(float(v.mean()), 1),
    }


def bench(image, clicks, model, zoom_in, flip):
    """Engine and widget timings, interleaved object by object (so that a change of the
    machine's load during the run affects both alike)."""
    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    import napari_fcfi
    from napari_fcfi._widget import FCFIWidget

    predictor = napari_fcfi.Predictor(model, device="cpu", zoom_in=zoom_in, flip=flip)
    viewer = napari.Viewer(show=False)
    viewer.add_image(image, name="img", rgb=image.ndim == 3)
    w = FCFIWidget(viewer, model=model)
    w.device_combo.setCurrentText("cpu")
    w.zoom_check.setChecked(zoom_in)
    w.flip_check.setChecked(flip)
    from napari_fcfi.annotation.events import LabelsChanged

    written = []
    loop = QEventLoop()

    def timed_write(event):  # the GUI-thread write of a click's result
        if isinstance(event, LabelsChanged):
            written.append(time.perf_counter())
            loop.quit()

    w.editor.events.connect(timed_write)
    # warm-up (creates the layers, the predictor and torch's kernels)
    napari_fcfi.InteractiveSession(predictor, image).add_click(*clicks[0][0], True)
    w.clicks_layer.add(clicks[0][0])
    w.wait(300)
    w.finish_object()
    w.wait()
    engine, widget = [], []
    for obj in clicks:
        s = napari_fcfi.InteractiveSession(predictor, image)
        for y, x in obj:
            t0 = time.perf_counter()
            s.add_click(y, x, True)
            engine.append(time.perf_counter() - t0)
        for y, x in obj:
            n = len(written)
            t0 = time.perf_counter()
            w.clicks_layer.add((y, x))
            if len(written) == n:
                # block in a Qt event loop, as napari's main loop does between events
                QTimer.singleShot(300_000, loop.quit)
                loop.exec_()
            if len(written) == n:
                raise TimeoutError("no label written")
            widget.append(written[n] - t0)
            w.wait()
        w.finish_object()
        w.wait()
    viewer.close()
    return engine, widget


def main(argv=None) -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite-random")
    parser.add_argument("--sample", default="nuclei2d")
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-zoom", action="store_true")
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from napari_fcfi._sample_data import load_sample

    image = load_sample(args.sample)[0][0]
    clicks = object_clicks(image, args.objects)
    model = build_model(args.model)
    zoom, flip = not args.no_zoom, not args.no_flip
    engine, widget = bench(image, clicks, model, zoom, flip)
    result = {
        "model": args.model,
        "sample": args.sample,
        "image_shape": list(image.shape),
        "zoom_in": zoom,
        "flip": flip,
        "torch_threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "engine": percentiles(engine),
        "widget": percentiles(widget),
    }
    result["overhead_p50_ms"] = round(result["widget"]["p50_ms"] - result["engine"]["p50_ms"], 1)
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
