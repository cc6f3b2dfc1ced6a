"""A run of ``napari-fcfi refine``: validated, fingerprinted, resumable, on dask.

Runs :func:`napari_fcfi.stack.refine.refine_slice` once per 2-D slice, each slice one
dask task, on a ``dask.distributed`` LocalCluster sized to the machine (single-threaded
worker processes, one per free core; each worker loads the model once), or on an existing
cluster with ``--scheduler ADDRESS`` (its workers must see the same paths). Tasks read
their own slice from the input files and write their own chunk of the output, so memory
stays at a few slices per worker whatever the stack size.

Inputs are TIFF (read lazily through tifffile's zarr interface) or zarr; the output is
zarr or TIFF by its extension. Before anything is written, the inputs are read once in
full to validate them and to fingerprint them, the model is loaded and the scheduler is
reached (within ``--timeout``). Bad input gives a one-line error, exit status 2 and no
output.

**Resume rule.** The work store (the zarr output, or ``OUT.partial.zarr`` for a TIFF
output) records the fingerprint of the run: the inputs' paths, sizes, modification times
and content hashes, the model's weights hash and every option except ``--slices``. Running
the same command again resumes it: slices already finished are skipped. A run whose
inputs, model or options differ in any way is refused (exit 2, naming what differs);
``--overwrite`` discards the old run and computes everything again. ``--slices`` may differ
between runs on the same output: each run refines its slices, and copies the others
unchanged unless a previous run refined them.

Heavy dependencies are imported when a function runs, so that ``napari-fcfi --help`` stays
instant.
"""

from __future__ import annotations

import math
import os

from .options import OPTION_RANGES, RefineOptions, check_option

# the defaults of refine_labels (the options module imports nothing heavy: --help stays
# instant)
DEFAULTS = RefineOptions().as_dict()
DEFAULT_TIMEOUT = 30.0


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


def check_run_settings(workers=None, threads=None, scheduler=None, timeout=DEFAULT_TIMEOUT):
    """ValueError for bad ``--workers``, ``--threads``, ``--scheduler`` or ``--timeout``."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers}: expected a positive number")
    if workers is not None and scheduler is not None:
        raise ValueError("--workers sizes the local cluster; it cannot go with --scheduler")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads {threads}: expected a positive number")
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        shown = f"{timeout:g}" if isinstance(timeout, int | float) else repr(timeout)
        raise ValueError(f"--timeout {shown}: expected a positive number of seconds")


def _check_flags(**options) -> None:
    """:func:`~napari_fcfi.stack.options.check_option`, with the message naming the flag."""
    for name, value in options.items():
        try:
            check_option(name, value)
        except ValueError:
            flag = "--" + name.replace("_", "-")
            low, high, integer = OPTION_RANGES[name]
            span = f">= {low}" if high == math.inf else f"from {low} to {high}"
            raise ValueError(
                f"{flag} {value}: expected {'an integer' if integer else 'a number'} {span}"
            ) from None


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
    overwrite=False,
    progress=False,
) -> dict:
    """Validate everything and describe the run; writes nothing. ValueError on bad input.

    Reads both inputs once in full (validation and fingerprint, see
    :mod:`napari_fcfi.stack.fingerprint`), loads the model, and checks that an existing
    work store at the output belongs to the same run (or that ``overwrite`` is set).
    ``model`` is a name or path for :func:`napari_fcfi.model.io.load_model`, or a
    picklable zero-argument callable returning a network (e.g. a class), for scripting
    and tests. ``progress`` shows a progress bar while the inputs are read.
    """
    from pathlib import Path

    import numpy as np

    from ..cores import allowed_cores
    from . import fingerprint, io, store, worker
    from .refine import (
        REFINE_PREDICTOR,
        check_labels_dtype,
        slice_indices,
        split_channels,
    )

    _check_flags(min_size=min_size, extra_clicks=extra_clicks, margin=margin)
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
    if out.exists() and io.kind_of(out) == "tiff" and not overwrite:
        raise ValueError(
            f"{out} already exists; run again with --overwrite to replace it, or choose another -o"
        )
    work = store.work_store_path(out)
    if work.exists():
        store.stored_fingerprint(work)  # refuses a store that is not ours, before the scan
    net = worker.load_network(model)  # a bad --model fails here, before anything is written
    model_fp = fingerprint.model_fingerprint(model, net)
    del net
    every = slice_indices(lab.shape)
    refine = {tuple(i) for i in slice_indices(lab.shape, sel)}
    image_fp, labels_fp = fingerprint.scan_inputs(
        img,
        lab,
        every,
        refine,
        image_path=os.path.abspath(image),
        labels_path=os.path.abspath(labels),
        threads=min(4, allowed_cores()),
        progress=progress,
    )
    options = RefineOptions(
        min_size=int(min_size), extra_clicks=int(extra_clicks), margin=float(margin)
    ).as_dict()
    dtype = np.dtype(lab.dtype).newbyteorder("=")
    fp = {
        "format": store.FORMAT,
        "shape": [int(n) for n in lab.shape],
        "dtype": dtype.str,
        "image": image_fp,
        "labels": labels_fp,
        "model": model_fp,
        # every option that defines the result, the defaults included
        "options": {**options, "predictor": dict(REFINE_PREDICTOR)},
    }
    store.check_resumable(work, fp, overwrite)
    return {
        "image": os.path.abspath(image),
        "labels": os.path.abspath(labels),
        "out": out,
        "work": work,
        "model": model,
        "fingerprint": fp,
        "all": [tuple(i) for i in every],
        "refine": refine,
        "options": options,
        "report": report,
        "overwrite": bool(overwrite),
    }


def make_runner(*, workers=None, threads=None, scheduler=None, timeout=DEFAULT_TIMEOUT):
    """Where the slice tasks run; reaches the scheduler (ValueError) and writes nothing."""
    from ..cores import default_threads, default_workers

    if scheduler == "synchronous":
        from .worker import InProcessRunner

        return InProcessRunner(threads or default_threads(1))
    from .cluster import DaskRunner

    if scheduler is None:
        n = workers or default_workers()
        return DaskRunner.local(n, threads or default_threads(n))
    return DaskRunner.remote(scheduler, threads or 1, timeout)


def slice_task(job: dict, index: tuple, refine: bool, threads: int = 1, worker=None):
    """One task: read slice ``index``, refine it (or copy it), write it, record it.

    ``worker`` is the :class:`~napari_fcfi.stack.worker.SliceWorker` to use; by default
    the one the run installed on this dask worker.
    """
    from .worker import current_worker

    if worker is None:
        worker = current_worker(job.get("run"))
    return worker.run_slice(job, index, refine, threads)


def pending(job: dict, records: dict | None = None) -> list[tuple[tuple, bool]]:
    """(index, refine?) of the slices still to do; refined slices are never redone.

    A slice counts as done only if its completion record holds
    (:func:`napari_fcfi.stack.store.valid_records`).
    """
    from . import store

    if records is None:
        records = store.valid_records(job["work"], job["all"])
    todo = []
    for index in job["all"]:
        wanted = tuple(index) in job["refine"]
        rec = records.get(tuple(index))
        if rec is not None and (not wanted or rec["refined"]):
            continue
        todo.append((tuple(index), wanted))
    return todo


def execute(job: dict, runner, *, progress=True) -> list[dict]:
    """Run the job (creating or resuming the work store) and finalize it; returns the report."""
    import numpy as np
    from tqdm import tqdm

    from . import store

    fp = job["fingerprint"]
    store.open_store(
        job["work"], fp["shape"], np.dtype(fp["dtype"]), fp, overwrite=job["overwrite"]
    )
    todo = pending(job)
    if todo:
        store.set_complete(job["work"], False)
    bar = tqdm(total=len(todo), unit="slice", desc="refine", disable=not progress or not todo)
    # what a task needs (not the slice lists: they grow with the stack)
    task_job = {k: job[k] for k in ("work", "model", "fingerprint", "options")}
    try:
        if todo:
            runner.run(slice_task, task_job, todo, bar)
    finally:
        bar.close()
    records = store.valid_records(job["work"], job["all"])
    left = pending(job, records)
    if left:
        raise RuntimeError(
            f"{len(left)} slice(s) are not recorded in {job['work']} after the run (do all "
            "workers see this path?)"
        )
    rows = [row for index in job["all"] for row in records[tuple(index)]["objects"]]
    store.finalize(job["work"], job["out"])
    if job["report"]:
        _write_csv(job["report"], rows)
    return rows


def _write_csv(path, rows) -> None:
    import csv

    fields = ["slice", "label", "status", "area_old", "area_new", "iou", "changed_pixels", "clicks"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for row in rows:
            w.writerow({**row, "slice": ":".join(map(str, row["slice"]))})
