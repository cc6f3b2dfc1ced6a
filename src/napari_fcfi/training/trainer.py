"""FCFI training loop (iterative click simulation, NFL losses, resumable checkpoints).

One optimisation step:

1. draw ``batch`` random crops and a multi-point click set for each
   (:mod:`napari_fcfi.training.data`);
2. choose ``n`` in 0..``max_robot_clicks``; run the network ``n`` times without gradients,
   each time adding one robot click per sample (the centre of the larger error region) and
   feeding the sigmoid of the output back as the previous mask (gate 0 on the first pass,
   1 afterwards); the newest click is always the FFCM focus;
3. a last pass with gradients; loss = NFL(instances) + 0.4 NFL(instances_aux)
   + 0.5 NFL(FFCM feedback, inside the soft focus window) + 0.5 NFL(CFFM feedback)
   (+ ``iou_weight`` (1 - soft IoU(instances)) when ``iou_weight`` > 0);
4. Adam (lr 5e-4, the backbone at x0.1), linear warm-up then cosine decay.

Checkpoints (model, optimiser, step, elapsed time, random states, best validation score)
go to ``workdir/checkpoint.pt`` every ``ckpt_every`` steps; ``resume=True`` continues from
there. A JSON-lines log is written to ``workdir/log.jsonl``.

The network trains on ``device`` (``"auto"``: a CUDA GPU, then Apple MPS, then the CPU);
``workers`` > 0 draws the batches in that many worker processes while it trains (for a
GPU; see :mod:`~napari_fcfi.training.batches`).

The samples come from :mod:`~napari_fcfi.training.data` (items:
:mod:`~napari_fcfi.training.items`, clicks: :mod:`~napari_fcfi.training.clicks`), the
robot-click rounds from :mod:`~napari_fcfi.training.simulation`, the quick validation from
:mod:`~napari_fcfi.training.validation` and the checkpoints' format from
:mod:`~napari_fcfi.training.checkpoint`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..devices import pick_device
from ..model.lite import save_lite
from .batches import batch_source
from .checkpoint import load_checkpoint, rng_state_from_plain, rng_state_to_plain, save_checkpoint
from .data import AugmentConfig, MixedGenerator, SampleGenerator
from .items import find_files, load_items, split_ids
from .losses import normalized_focal_loss, soft_focus_weight, soft_iou_loss
from .setup import build_model, freeze_early_backbone, make_optimizer
from .simulation import recalibrate_bn, simulate_clicks, to_batch
from .validation import ValidationSet

LOSS_WEIGHTS = {"instances": 1.0, "instances_aux": 0.4, "ffcm": 0.5, "cffm": 0.5}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and the weights)."""

    images: str | list[str]  # one folder per dataset
    labels: str | list[str]
    out: str
    init: str | None = None
    steps: int = 2000
    crop: int = 256
    batch: int = 8
    val_fraction: float | None = None
    lr: float = 5e-4
    backbone_lr_mult: float = 0.1
    warmup: int = 50
    max_robot_clicks: int = 3
    seed: int = 0
    threads: int = 2
    workdir: str | None = None
    ckpt_every: int = 50
    val_every: int = 200
    val_objects: int = 32
    time_limit: float | None = None  # minutes; the LR schedule then follows the clock too
    scale_range: tuple[float, float] = (0.6, 2.0)
    scale_mode: str = "image"  # or "object": see AugmentConfig
    #: with ``scale_mode="object"``: the part of the crop that the object's bounding box
    #: spans for half of the samples (the zoomed views' scale; the rest span 8-90 %)
    object_span: tuple[float, float] = (0.3, 0.6)
    data_weights: list[float] | None = None  # sampling weight of each dataset (default equal)
    bf16: bool = False  # bfloat16 autocast (on the CPU: fast only with native bfloat16)
    #: where the network trains: "auto" (CUDA, then MPS, then the CPU), "cpu", "cuda", ...
    device: str = "auto"
    #: processes that draw the batches while the network trains (0: the training process)
    workers: int = 0
    #: backbone stem and this many first MBConv blocks keep their (ImageNet) weights: their
    #: weight gradients are not computed (faster steps; generic early features)
    freeze_blocks: int = 0
    #: batches of the BatchNorm re-estimation before each validation and at the end (0: off)
    precise_bn: int = 40
    channels_last: bool = True
    #: weight of a soft-IoU loss on the instance output, added to the focal losses (0: off)
    iou_weight: float = 0.0
    model_params: dict = field(default_factory=dict)

    @property
    def datasets(self) -> list[tuple[str, str]]:
        imgs = [self.images] if isinstance(self.images, str) else list(self.images)
        labs = [self.labels] if isinstance(self.labels, str) else list(self.labels)
        if len(imgs) != len(labs):
            raise ValueError(f"{len(imgs)} image folders but {len(labs)} label folders")
        return list(zip(imgs, labs))

    @property
    def run_dir(self) -> Path:
        if self.workdir:
            return Path(self.workdir)
        out = Path(self.out)
        return out.with_name(out.stem + ".run")


def _bn_rng(cfg, step: int) -> np.random.Generator:
    """The BatchNorm re-estimation's own random stream (the training stream is untouched,
    so validation and stopping points do not change the training samples)."""
    return np.random.default_rng([cfg.seed, step, 0xB7])


def compute_losses(out, target_t, new_points, ratio, iou_weight=0.0):
    """Weighted NFL terms (+ ``iou_weight`` soft-IoU); returns (total, dict of floats)."""
    h, w = target_t.shape[-2:]
    focus = soft_focus_weight(new_points, h, w, ratio)
    terms = {
        "instances": normalized_focal_loss(out["instances"], target_t),
        "ffcm": normalized_focal_loss(
            out["feedback_ffcm"], target_t, weight=focus, from_logits=False
        ),
        "cffm": normalized_focal_loss(out["feedback_cffm"], target_t, from_logits=False),
    }
    if "instances_aux" in out:
        terms["instances_aux"] = normalized_focal_loss(out["instances_aux"], target_t)
    total = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
    if iou_weight > 0:
        terms["iou"] = soft_iou_loss(out["instances"], target_t)
        total = total + iou_weight * terms["iou"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


def lr_factor(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Warm-up then cosine decay to 5 % of the base rate, over steps (or the clock)."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    if cfg.time_limit:
        progress = max(progress, elapsed_s / (60.0 * cfg.time_limit))
    progress = min(progress, 1.0)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(cfg: TrainConfig, progress: bool = True, resume: bool = False) -> dict:
    """Run (or resume) a training; writes the final weights to ``cfg.out``; returns a summary."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, progress, resume)
    finally:
        torch.set_num_threads(threads)


def _dataset_name(images: str) -> str:
    """A short name for a dataset folder: a known set's name (``dsb2018``, ``usiigaci``) when
    the path holds one, else the folder above ``images/`` (or the folder itself)."""
    from ..splits import MODULUS

    path = Path(images).resolve()
    for part in reversed(path.parts):
        if part.lower() in MODULUS:
            return part.lower()
    return path.parent.name if path.name == "images" else path.name


def load_datasets(cfg: TrainConfig):
    """Per dataset: (name, training items, validation items), split by the fixed rule."""
    from ..splits import modulus_for

    out = []
    for images, labels in cfg.datasets:
        names = sorted(find_files(Path(images)))
        train_ids, val_ids = split_ids(names, cfg.val_fraction, modulus_for(images))
        if not train_ids:
            raise ValueError(
                f"the validation split of {images} leaves no training image; lower --val-fraction"
            )
        items = load_items(images, labels, train_ids)
        val_items = load_items(images, labels, val_ids) if val_ids else []
        out.append((_dataset_name(images), items, val_items))
    return out


def training_generator(cfg: TrainConfig, data) -> MixedGenerator:
    """The training samples of ``data`` (:func:`load_datasets`' output), drawn as ``cfg``
    says (crop, scale, the datasets' weights)."""
    aug = AugmentConfig(
        crop=cfg.crop,
        scale_range=tuple(cfg.scale_range),
        scale_mode=cfg.scale_mode,
        canonical=tuple(float(v) for v in cfg.object_span),
    )
    return MixedGenerator([SampleGenerator(items, aug) for _, items, _ in data], cfg.data_weights)


def _train(cfg: TrainConfig, progress: bool, resume: bool) -> dict:
    from tqdm import tqdm

    run_dir = cfg.run_dir
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and not ckpt_path.is_file():
        raise ValueError(f"--resume: no checkpoint at {ckpt_path}")
    ck = load_checkpoint(ckpt_path) if resume else None

    data = load_datasets(cfg)
    gen = training_generator(cfg, data)
    validations = {name: ValidationSet(val, cfg.val_objects) for name, _, val in data if val}

    dev = pick_device(cfg.device)
    if cfg.workers < 0:
        raise ValueError(f"workers must be >= 0, got {cfg.workers}")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    before = int(getattr(model, "training_before", 0))
    model.train()
    model = model.to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    freeze_early_backbone(model, cfg.freeze_blocks)
    opt = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed, best = 0, 0.0, -1.0
    if ck is not None:
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            rng.bit_generator.state = rng_state_from_plain(ck["rng"])
            torch.set_rng_state(ck["torch_rng"])
            step, elapsed, best = int(ck["step"]), float(ck["elapsed"]), float(ck["best"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(
                f"the checkpoint {ckpt_path} does not match this training (other model or "
                f"options?): {first}"
            ) from None
    # the inputs, the model and the checkpoint are valid: only now is anything written
    run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint():
        save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng_state_to_plain(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "elapsed": elapsed,
                "best": best,
                "config": json.loads(json.dumps(asdict(cfg))),
            },
        )

    def autocast():
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    def to_device(batch):
        images, targets, target_t, clicks, counts = batch
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        images = images.to(dev, memory_format=fmt, non_blocking=True)
        return images, targets, target_t.to(dev, non_blocking=True), clicks, counts

    batches = batch_source(gen, rng, cfg, start_step=step, pin_memory=dev.type == "cuda")

    log = (run_dir / "log.jsonl").open("a")
    ratio = model.params["expansion_ratio"]
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", unit="step")
    t_start = time.time() - elapsed
    bad_steps = 0
    try:
        while step < cfg.steps:
            if cfg.time_limit and elapsed >= 60.0 * cfg.time_limit:
                break
            t0 = time.time()
            images, targets, target_t, clicks, counts = to_device(next(batches))
            t_data = time.time() - t0
            with autocast():
                prev, gate = simulate_clicks(model, images, targets, clicks, counts)
                pts, new = to_batch(clicks, images.device)
                out = model(images, prev.float(), pts, new, gate)
            out = {k: v.float() for k, v in out.items()}
            loss, terms = compute_losses(out, target_t, new, ratio, cfg.iou_weight)
            if not torch.isfinite(loss):  # skip the update; give up if it keeps happening
                bad_steps += 1
                if bad_steps > 10:
                    raise FloatingPointError(f"non-finite loss at step {step}: {terms}")
                continue
            bad_steps = 0
            f = lr_factor(step, cfg, elapsed)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * g["base"] * f
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            elapsed = time.time() - t_start
            rec = {
                "step": step,
                "samples": step * cfg.batch,
                "samples_total": before + step * cfg.batch,
                "loss": float(loss.detach()),
                **terms,
                "n_iter": float(np.mean(counts)),
                "lr": cfg.lr * f,
                "s_per_step": time.time() - t0,
                "s_data": t_data,
                "elapsed": elapsed,
            }
            if validations and (step % cfg.val_every == 0 or step == cfg.steps):
                if cfg.precise_bn:
                    recalibrate_bn(model, gen, _bn_rng(cfg, step), cfg, cfg.precise_bn)
                scores = []
                for name, val in validations.items():
                    miou = val.evaluate(model)
                    rec[f"val_miou_{name}"] = miou
                    scores.append(float(np.mean(miou)))
                score = float(np.mean(scores))
                rec["val_score"] = score
                snap = run_dir / "snapshots" / f"step{step:07d}.safetensors"
                save_lite(model, snap, half=True, extra={"step": step, "samples": step * cfg.batch})
                if score > best:
                    best = score
                    save_lite(model, run_dir / "best.safetensors", extra={"step": step})
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", s_step=f"{rec['s_per_step']:.2f}")
            if step % cfg.ckpt_every == 0:
                checkpoint()
    finally:
        bar.close()
        batches.close()
    checkpoint()  # before the final re-estimation: a resumed run continues bit for bit
    if cfg.precise_bn and step > 0:
        recalibrate_bn(model, gen, _bn_rng(cfg, step), cfg, cfg.precise_bn)
    log.close()
    info = {
        "training": {
            "steps": step,
            "samples": step * cfg.batch,
            "samples_total": before + step * cfg.batch,
            "batch": cfg.batch,
            "crop": cfg.crop,
            "wall_time_s": round(elapsed, 1),
            "init": cfg.init or "imagenet:efficientnet-lite0",
            "device": dev.type,
            "datasets": {name: [len(items), len(val)] for name, items, val in data},
            "seed": cfg.seed,
            # the recipe, so that the weights say how they were made
            "lr": cfg.lr,
            "max_robot_clicks": cfg.max_robot_clicks,
            "freeze_blocks": cfg.freeze_blocks,
            "iou_weight": cfg.iou_weight,
            "scale_mode": cfg.scale_mode,
            **(
                {"object_span": [float(v) for v in cfg.object_span]}
                if cfg.scale_mode == "object"
                else {}
            ),
        }
    }
    save_lite(model, cfg.out, extra=info)
    return {"steps": step, "elapsed": elapsed, "best": best, "out": str(cfg.out)}
