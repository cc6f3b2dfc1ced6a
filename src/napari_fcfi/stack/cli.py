"""``napari-fcfi refine IMAGE LABELS -o OUT``: refine every object of every slice.

The command's arguments and exit statuses: bad input gives a one-line error, exit status 2
and no output; a failing slice task exit status 1, with the finished slices kept for a
re-run. What a run does (validation, fingerprint, resume rule, dask) is
:mod:`napari_fcfi.stack.batch`.

This module is imported by ``napari-fcfi --help``; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import sys

from ..model.catalogue import model_option_help
from .batch import DEFAULT_TIMEOUT, DEFAULTS, check_run_settings, execute, make_runner, prepare

DESCRIPTION = (
    "Refine every object of every slice of a label stack with FCFI: each object's mask "
    "is the feedback plus an automatic click at its interior point. TIFF or zarr in, "
    "zarr or TIFF out (by extension); parallel with dask.distributed; resumable: the same "
    "command continues an interrupted run, and a run with other inputs, model or options "
    "is refused unless --overwrite is given."
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
        help="output .zarr or .tif/.tiff; re-running the same command resumes an interrupted "
        "run (only with the same inputs, model and options)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="discard an existing output or interrupted run at OUT and compute everything again",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help=model_option_help(),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: one per free CPU core)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="torch threads per worker process (default: the free CPU cores divided among "
        "the workers, at least 1; 1 on a --scheduler cluster)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running dask.distributed scheduler (e.g. tcp://host:8786) "
        "instead of a local cluster; 'synchronous' runs in this process",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="give up if the --scheduler has not answered, with at least one worker, within "
        f"S seconds (default {DEFAULT_TIMEOUT:g})",
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
        help="a pixel changes only where the probability is at least P (0 to 1) past the "
        f"threshold; elsewhere the current mask is kept (default {DEFAULTS['margin']})",
    )
    p.add_argument(
        "--report",
        default=None,
        metavar="CSV",
        help="also write the per-object report (slice, id, IoU, changed pixels) here",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    runner = None
    try:
        check_run_settings(args.workers, args.threads, args.scheduler, args.timeout)
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
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
        runner = make_runner(
            workers=args.workers,
            threads=args.threads,
            scheduler=args.scheduler,
            timeout=args.timeout,
        )
    except ValueError as exc:
        print(f"napari-fcfi refine: error: {exc}", file=sys.stderr)
        return 2
    try:
        execute(job, runner, progress=not args.quiet)
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
    finally:
        runner.close()
    return 0
