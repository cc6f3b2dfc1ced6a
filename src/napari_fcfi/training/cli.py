"""``napari-fcfi train``: train FCFI-Lite on annotated images, or fine-tune the built-in model.

Examples::

    # the built-in model (DSB2018 nuclei, ImageNet backbone; needs the 'train' extra)
    napari-fcfi train --images dsb2018/train/images --labels dsb2018/train/labels \\
        --steps 1500 --crop 192 --batch 8 --out fcfi-lite.safetensors

    # fine-tune the built-in model on your own annotations (no extra package needed)
    napari-fcfi train --images my/images --labels my/labels --init fcfi-lite \\
        --steps 300 --val-fraction 0 --out my-model.safetensors

Images and label images are matched by file name (without extension); labels are integer
instance masks (0 = background). The result loads with ``napari_fcfi.load_model(path)``.
Existing weights at ``--out`` are kept unless ``--overwrite`` is given (``--resume``
continues a run and replaces its output). Invalid options or data stop the command with a
one-line message and exit status 2, before anything is written.
"""

from __future__ import annotations

import math
import sys


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune an FCFI-Lite model on instance-labelled images",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--images",
        required=True,
        action="append",
        help="folder of images (tif, png, ...); repeat (with --labels) for several datasets",
    )
    p.add_argument(
        "--labels",
        required=True,
        action="append",
        help="folder of instance label images, same names; one per --images",
    )
    p.add_argument(
        "--data-weights",
        type=float,
        nargs="+",
        default=None,
        help="sampling weight of each dataset (default: equal)",
    )
    p.add_argument("--out", required=True, help="output weights, *.safetensors (+ .json config)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing weights (and their .json) at --out",
    )
    p.add_argument(
        "--init",
        default=None,
        help="start from trained FCFI-Lite weights: a built-in model's name ('fcfi-lite', the "
        "default built-in model, also 'builtin') or a .safetensors path "
        "(default: a new model with the ImageNet EfficientNet-Lite0 backbone)",
    )
    p.add_argument("--steps", type=int, default=2000, help="optimisation steps (default 2000)")
    p.add_argument("--crop", type=int, default=256, help="training crop size in pixels")
    p.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="hold out this fraction of images (by file-name hash) for validation; default: "
        "the project's fixed DSB2018 split (about 10 %%); 0 trains on every image",
    )
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (backbone x0.1)")
    p.add_argument(
        "--scale-mode",
        choices=["image", "object"],
        default="object",
        help="'object': crops are scaled so that the object spans a chosen part of the crop "
        "(objects of any size, as the predictor's views present them); 'image': a jitter "
        "around the image's own pixel size",
    )
    p.add_argument(
        "--object-span",
        type=float,
        nargs=2,
        default=[0.3, 0.6],
        metavar=("LO", "HI"),
        help="with --scale-mode object: half of the crops show the object's bounding box "
        "spanning LO-HI of the crop (the zoomed views' scale; default 0.3 0.6), the other "
        "half 8-90 %%",
    )
    p.add_argument(
        "--half-res-refine",
        action="store_true",
        help="add the 1/2-resolution boundary refinement (a warm start copies every "
        "matching parameter of --init)",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast (on a GPU; on the CPU fast only with native bfloat16)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where the network trains: auto (a CUDA GPU, then Apple MPS, then the CPU; "
        "the default), cpu, cuda, cuda:N or mps",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="draw the training batches in N worker processes while the network trains "
        "(for a GPU: about one per free CPU core); default 0: in the training process, "
        "and a resumed run continues bit for bit",
    )
    p.add_argument(
        "--freeze-blocks",
        type=int,
        default=0,
        metavar="K",
        help="keep the backbone stem and its first K blocks fixed (faster steps)",
    )
    p.add_argument(
        "--iou-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="add W x (1 - soft IoU) of the output mask to the focal losses (default 0: off)",
    )
    p.add_argument(
        "--max-robot-clicks", type=int, default=3, help="simulated clicks per sample (0..N)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--workdir", default=None, help="checkpoints and log (default: OUT.run/)")
    p.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoint.pt")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MIN",
        help="stop after MIN minutes; the learning-rate decay then also follows the clock",
    )
    p.add_argument("--val-every", type=int, default=200, help="validation interval (steps)")
    p.add_argument("--ckpt-every", type=int, default=50, help="checkpoint interval (steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    """Validate the options, train, print a summary; expected errors -> one line, exit 2."""
    try:
        return _run(args)
    except ValueError as exc:  # bad options, data, checkpoints (CheckpointError included)
        print(f"napari-fcfi train: {exc}", file=sys.stderr)
        return 2


def _check_options(args) -> None:
    from pathlib import Path

    for name in ("steps", "crop", "batch", "threads", "val_every", "ckpt_every"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be positive, got {getattr(args, name)}")
    for name in ("max_robot_clicks", "freeze_blocks", "workers"):
        if getattr(args, name) < 0:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be >= 0, got {getattr(args, name)}")
    if not (math.isfinite(args.iou_weight) and args.iou_weight >= 0):
        raise ValueError(f"--iou-weight must be a number >= 0, got {args.iou_weight}")
    lo, hi = args.object_span
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= 1):
        raise ValueError(f"--object-span must be two fractions 0 < LO <= HI <= 1, got {lo} {hi}")
    if args.crop % 32:
        raise ValueError(f"--crop must be a multiple of 32, got {args.crop}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    if args.val_fraction is not None and not 0.0 <= args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise ValueError(
            f"--time-limit must be a positive number of minutes, got {args.time_limit}"
        )
    from ..devices import pick_device

    pick_device(args.device)  # an unknown or unavailable device: a one-line message
    if not str(args.out).endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {args.out}")
    out = Path(args.out)
    existing = [p for p in (out, out.with_suffix(".json")) if p.exists()]
    if existing and not (args.overwrite or args.resume):
        raise ValueError(
            f"{existing[0]} already exists; pass --overwrite to replace it, or choose another --out"
        )
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory")
    for name in ("images", "labels"):
        for folder in getattr(args, name):
            if not Path(folder).is_dir():
                raise ValueError(f"--{name} {folder} is not a directory")
    if len(args.images) != len(args.labels):
        raise ValueError("give one --labels folder for each --images folder")
    if args.data_weights is not None and len(args.data_weights) != len(args.images):
        raise ValueError("give one --data-weights value for each --images folder")


def _run(args) -> int:
    from .trainer import TrainConfig, train

    _check_options(args)
    cfg = TrainConfig(
        images=args.images,
        labels=args.labels,
        out=args.out,
        init=args.init,
        steps=args.steps,
        crop=args.crop,
        batch=args.batch,
        val_fraction=args.val_fraction,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        workdir=args.workdir,
        ckpt_every=args.ckpt_every,
        val_every=args.val_every,
        time_limit=args.time_limit,
        scale_mode=args.scale_mode,
        object_span=tuple(args.object_span),
        data_weights=args.data_weights,
        bf16=args.bf16,
        device=args.device,
        workers=args.workers,
        freeze_blocks=args.freeze_blocks,
        max_robot_clicks=args.max_robot_clicks,
        iou_weight=args.iou_weight,
        model_params={"half_res_refine": True} if args.half_res_refine else {},
    )
    summary = train(cfg, progress=not args.no_progress, resume=args.resume)
    print(
        f"trained {summary['steps']} steps in {summary['elapsed'] / 60:.1f} min; "
        f"weights: {summary['out']}"
    )
    return 0
