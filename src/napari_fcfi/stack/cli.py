"""``napari-fcfi refine IMAGE LABELS -o OUT``: refine every object of every slice.

Runs :func:`napari_fcfi.stack.refine.refine_slice` once per 2-D slice, each slice one
dask task, on a ``dask.distributed`` LocalCluster sized to the machine (one single-threaded
worker process per core; each worker loads the model once), or on an existing cluster
with ``--scheduler ADDRESS`` (its workers must see the same paths). Tasks read their own
slice from the input files and write their own chunk of the output, so memory stays at a
few slices per worker whatever the stack size.

Inputs are TIFF (read lazily through tifffile's zarr interface) or zarr; the output is
zarr or TIFF by its extension. The run is resumable: slices already written are skipped
when the same command is run again (a TIFF output is assembled from ``OUT.partial.zarr``
at the end). Bad input gives a one-line error, exit status 2 and no output.

This module is imported by ``napari-fcfi --help``; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys

# the defaults of refine_labels (kept literal here so that --help stays instant; a test
# checks that they match)
DEFAULTS = {"min_size": 25, "extra_clicks": 1, "margin": 0.35}

DESCRIPTION = (
    "Refine every object of every slice of a label stack with FCFI: each object's mask "
    "is the feedback plus an automatic click at its interior point. TIFF or zarr in, "
    "zarr or TIFF out (by extension); parallel with dask.distributed; resumable."
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "refine", help="refine a label stack with FCFI (batch, dask)", description=DESCRIPTION
    )
    p.add_argument(
        "image", metavar="IMAGE", help="image stack (.tif/.tiff or .zarr), (..., Y, X[, C])"
    )
    p.add_argument("labels", metavar="LABELS", help="integer label stack of the same (..., Y, X)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output .zarr or .tif/.tiff; re-running the same command resumes an interrupted run",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="model name or checkpoint path (default: the built-in model)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: one per CPU core)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running dask.distributed scheduler (e.g. tcp://host:8786) "
        "instead of a local cluster; 'synchronous' runs in this process",
    )
    p.add_argument(
        "--slices",
        default=None,
        metavar="A:B",
        help="refine only slices A..B-1 of the first axis (others are copied unchanged)",
    )
    p.add_argument(
        "--min-size",
        type=int,
        default=DEFAULTS["min_size"],
        metavar="PX",
        help=f"objects smaller than this are kept as they are (default {DEFAULTS['min_size']})",
    )
    p.add_argument(
        "--extra-clicks",
        type=int,
        default=DEFAULTS["extra_clicks"],
        metavar="K",
        help="at most K corrective clicks per object where the refined and the "
        f"current masks disagree strongly (default {DEFAULTS['extra_clicks']}; 0 disables)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=DEFAULTS["margin"],
        metavar="P",
        help="a pixel changes only where the probability is at least P past the threshold; "
        f"elsewhere the current mask is kept (default {DEFAULTS['margin']})",
    )
    p.add_argument(
        "--report",
        default=None,
        metavar="CSV",
        help="also write the per-object report (slice, id, IoU, changed pixels) here",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_slices(text: str | None, n: int) -> slice | None:
    """``"A:B"``, ``"A:"``, ``":B"`` or ``"A"`` -> a non-empty slice of ``range(n)``."""
    if text is None:
        return None
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            s = slice(int(a) if a.strip() else None, int(b) if b.strip() else None)
        else:
            i = int(text)
            s = slice(i, i + 1 if i != -1 else None)
    except ValueError:
        raise ValueError(f"--slices {text!r}: expected A:B with integers") from None
    if len(range(n)[s]) == 0:
        raise ValueError(f"--slices {text!r} selects no slice of the {n} in the stack")
    return s


def run(args) -> int:
    try:
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers {args.workers}: expected a positive number")
        if args.workers is not None and args.scheduler is not None:
            raise ValueError("--workers sizes the local cluster; it cannot go with --scheduler")
        job = prepare(
            args.image,
            args.labels,
            args.output,
            model=args.model,
            slices=args.slices,
            min_size=args.min_size,
            extra_clicks=args.extra_clicks,
            margin=args.margin,
            report=args.report,
        )
    except ValueError as exc:
        print(f"napari-fcfi refine: error: {exc}", file=sys.stderr)
        return 2
    try:
        execute(job, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing slice task: keep the partial output for a re-run
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"napari-fcfi refine: error: {type(exc).__name__}: {msg} (finished slices are kept; "
            "run the same command again to resume)",
            file=sys.stderr,
        )
        return 1
    return 0


# --------------------------------------------------------------------------- the job


def prepare(
    image,
    labels,
    output,
    *,
    model=None,
    slices=None,
    min_size=DEFAULTS["min_size"],
    extra_clicks=DEFAULTS["extra_clicks"],
    margin=DEFAULTS["margin"],
    report=None,
) -> dict:
    """Validate everything and describe the run; writes nothing. ValueError on bad input.

    ``model`` is a name or path for :func:`napari_fcfi.load_model`, or a picklable
    zero-argument callable returning a network (e.g. a class), for scripting and tests.
    """
    from pathlib import Path

    import numpy as np

    from . import io
    from .refine import check_labels_dtype, slice_indices, split_channels

    out = Path(output)
    io.kind_of(out)
    for src in (image, labels):
        if os.path.abspath(src) == os.path.abspath(out):
            raise ValueError(f"output {out} would overwrite input {src}")
    img = io.open_array(image)
    lab = io.open_array(labels)
    check_labels_dtype(lab.dtype)
    split_channels(img.shape, lab.shape)
    if lab.ndim < 3:
        if slices is not None:
            raise ValueError("--slices needs a stack (Z, Y, X); the labels are 2-D")
        sel = None
    else:
        sel = parse_slices(slices, lab.shape[0])
    if report is not None and not str(report).lower().endswith(".csv"):
        raise ValueError(f"--report {report}: expected a .csv file name")
    if out.exists() and io.kind_of(out) == "tiff":
        raise ValueError(f"{out} already exists; remove it or choose another -o")
    work = io.work_store_path(out)
    meta = {
        "shape": list(lab.shape),
        "dtype": np.dtype(lab.dtype).str,
        "image": os.path.abspath(image),
        "labels": os.path.abspath(labels),
        "model": model if isinstance(model, str) or model is None else repr(model),
    }
    if work.exists():
        _check_resumable(work, meta)
    _load_model(model)  # a bad --model fails here, before anything is written
    refine = {tuple(i) for i in slice_indices(lab.shape, sel)} if lab.ndim >= 3 else {()}
    return {
        "image": os.path.abspath(image),
        "labels": os.path.abspath(labels),
        "out": out,
        "work": work,
        "meta": meta,
        "model": model,
        "all": slice_indices(lab.shape),
        "refine": refine,
        "options": {
            "min_size": int(min_size),
            "extra_clicks": int(extra_clicks),
            "margin": float(margin),
        },
        "report": report,
    }


def _check_resumable(work, meta) -> None:
    import zarr

    from . import io

    try:
        old = dict(zarr.open_array(str(work), mode="r").attrs).get(io.META_KEY)
    except Exception:
        old = None
    if old is None:
        raise ValueError(f"{work} exists and is not a napari-fcfi refine output; remove it")
    if (list(old["shape"]), old["dtype"]) != (meta["shape"], meta["dtype"]):
        raise ValueError(
            f"{work} holds a run for shape {tuple(old['shape'])} {old['dtype']}, not "
            f"{tuple(meta['shape'])} {meta['dtype']}; remove it or choose another -o"
        )


def _load_model(model):
    import napari_fcfi

    if model is None or isinstance(model, str | os.PathLike):
        try:
            return napari_fcfi.load_model(model)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(msg if model is None else f"--model {model}: {msg}") from None
    return model()


_PREDICTORS: dict = {}


def _worker_predictor(model, threads: int):
    """One predictor per (worker process, model): the model is loaded once per worker."""
    key = (model if isinstance(model, str) or model is None else id(model), threads)
    if key not in _PREDICTORS:
        import torch

        from .refine import default_predictor

        torch.set_num_threads(max(1, threads))
        _PREDICTORS[key] = default_predictor(_load_model(model))
    return _PREDICTORS[key]


def slice_task(job: dict, index: tuple, refine: bool, threads: int = 1) -> list[dict]:
    """One dask task: read slice ``index``, refine it (or copy it), write it, record it."""
    import numpy as np
    import zarr

    from . import io
    from .refine import refine_slice

    lab_arr = io.open_array(job["labels"], cached=True)
    lab = np.asarray(lab_arr[index])
    rows: list[dict] = []
    if refine:
        img = np.asarray(io.open_array(job["image"], cached=True)[index])
        out, report = refine_slice(
            img, lab, _worker_predictor(job["model"], threads), index=index, **job["options"]
        )
        rows = [r.as_dict() for r in report]
    else:
        out = lab
    arr = zarr.open_array(str(job["work"]), mode="r+")
    arr[index] = out
    io.record_slice(job["work"], index, rows, refined=refine)
    return rows


def pending(job: dict) -> list[tuple[tuple, bool]]:
    """(index, refine?) of the slices still to do; refined slices are never redone."""
    from . import io

    done = io.finished_slices(job["work"])
    todo = []
    for index in job["all"]:
        key = io.slice_key(index)
        wanted = tuple(index) in job["refine"]
        if key in done and (not wanted or io.is_refined(job["work"], key)):
            continue
        todo.append((tuple(index), wanted))
    return todo


def execute(job: dict, *, workers=None, scheduler=None, progress=True) -> list[dict]:
    """Run the job (creating or resuming the output) and finalize it; returns the report."""
    import numpy as np
    from tqdm import tqdm

    from . import io

    io.create_or_resume(
        job["work"], job["meta"]["shape"], np.dtype(job["meta"]["dtype"]), job["meta"]
    )
    todo = pending(job)
    bar = tqdm(total=len(todo), unit="slice", desc="refine", disable=not progress or not todo)
    if todo and scheduler == "synchronous":
        for index, wanted in todo:
            slice_task(job, index, wanted, threads=_cpu_count())
            bar.update()
    elif todo:
        _run_distributed(job, todo, workers, scheduler, bar)
    bar.close()
    records = io.read_records(job["work"])
    rows = [row for rec in records for row in rec["objects"]]
    io.finalize(job["work"], job["out"])
    if job["report"]:
        _write_csv(job["report"], rows)
    return rows


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return os.cpu_count() or 1


def _worker_environ() -> dict:
    """dask's worker environment without ``MALLOC_TRIM_THRESHOLD_``.

    dask sets it to 64 KiB for its workers; glibc then also stops adapting its mmap
    threshold, so every large torch buffer is mmap'ed and unmapped again: the network ran
    2.2x slower in a worker than in a plain process (FCFILite, 128 px, 1 thread).
    """
    import dask
    import distributed  # noqa: F401 - loads distributed's config defaults

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env["MALLOC_TRIM_THRESHOLD_"] = None  # None unsets a variable (distributed.nanny)
    return env


def _run_distributed(job, todo, workers, scheduler, bar) -> None:
    import logging

    import dask
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        n = workers or _cpu_count()
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        threads = max(1, _cpu_count() // n)
        client = Client(cluster)
    else:
        client = Client(scheduler)
        threads = 1
    # what a task needs (not the slice lists: they grow with the stack)
    job = {k: job[k] for k in ("image", "labels", "work", "model", "options")}
    try:
        futures = [
            client.submit(
                slice_task,
                job,
                index,
                wanted,
                threads,
                pure=False,
                key=f"refine-slice-{'_'.join(map(str, index))}-{os.getpid()}",
            )
            for index, wanted in todo
        ]
        for fut in as_completed(futures):
            fut.result()  # re-raises a task's error here
            bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_csv(path, rows) -> None:
    import csv

    fields = ["slice", "label", "status", "area_old", "area_new", "iou", "changed_pixels", "clicks"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for row in rows:
            w.writerow({**row, "slice": ":".join(map(str, row["slice"]))})
