"""``napari-fcfi train``: train FCFI-Lite on annotated images, or fine-tune the built-in model.

Examples::

    # the built-in model (DSB2018 nuclei, ImageNet backbone; needs the 'train' extra)
    napari-fcfi train --images dsb2018/train/images --labels dsb2018/train/labels \\
        --steps 1500 --crop 192 --batch 8 --out fcfi-lite-dsb.safetensors

    # fine-tune the built-in model on your own annotations (no extra package needed)
    napari-fcfi train --images my/images --labels my/labels --init builtin \\
        --steps 300 --val-fraction 0 --out my-model.safetensors

Images and label images are matched by file name (without extension); labels are integer
instance masks (0 = background). The result loads with ``napari_fcfi.load_model(path)``.
"""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune an FCFI-Lite model on instance-labelled images",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--images", required=True, help="folder of images (tif, png, ...)")
    p.add_argument("--labels", required=True, help="folder of instance label images, same names")
    p.add_argument("--out", required=True, help="output weights, *.safetensors (+ .json config)")
    p.add_argument(
        "--init",
        default=None,
        help="start from trained FCFI-Lite weights: 'builtin' or a .safetensors path "
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
    from pathlib import Path

    from .trainer import TrainConfig, train

    for name in ("steps", "crop", "batch"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be positive, got {getattr(args, name)}")
    if args.crop % 32:
        raise ValueError(f"--crop must be a multiple of 32, got {args.crop}")
    if not str(args.out).endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {args.out}")
    for name in ("images", "labels"):
        if not Path(getattr(args, name)).is_dir():
            raise ValueError(f"--{name} {getattr(args, name)} is not a directory")
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
    )
    summary = train(cfg, progress=not args.no_progress, resume=args.resume)
    print(
        f"trained {summary['steps']} steps in {summary['elapsed'] / 60:.1f} min; "
        f"weights: {summary['out']}"
    )
    return 0
