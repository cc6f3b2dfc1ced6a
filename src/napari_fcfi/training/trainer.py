"""FCFI training loop (iterative click simulation, NFL losses, resumable checkpoints).

One optimisation step:

1. draw ``batch`` random crops and a multi-point click set for each
   (:mod:`napari_fcfi.training.data`);
2. choose ``n`` in 0..``max_robot_clicks``; run the network ``n`` times without gradients,
   each time adding one robot click per sample (the centre of the larger error region) and
   feeding the sigmoid of the output back as the previous mask (gate 0 on the first pass,
   1 afterwards); the newest click is always the FFCM focus;
3. a last pass with gradients; loss = NFL(instances) + 0.4 NFL(instances_aux)
   + 0.5 NFL(FFCM feedback, inside the soft focus window) + 0.5 NFL(CFFM feedback);
4. Adam (lr 5e-4, the backbone at x0.1), linear warm-up then cosine decay.

Checkpoints (model, optimiser, step, elapsed time, random states, best validation score)
go to ``workdir/checkpoint.pt`` every ``ckpt_every`` steps; ``resume=True`` continues from
there. A JSON-lines log is written to ``workdir/log.jsonl``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..model.clicks import new_points_array, points_array
from ..model.lite import FCFILite, load_lite, pretrained_model, save_lite
from .data import AugmentConfig, SampleGenerator, load_items, robot_click, sample_points, split_ids
from .losses import normalized_focal_loss, soft_focus_weight

LOSS_WEIGHTS = {"instances": 1.0, "instances_aux": 0.4, "ffcm": 0.5, "cffm": 0.5}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and the weights)."""

    images: str
    labels: str
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
    model_params: dict = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        if self.workdir:
            return Path(self.workdir)
        out = Path(self.out)
        return out.with_name(out.stem + ".run")


def _to_batch(clicks_list, device):
    """Lists of chronological clicks -> (points (B, 2N, 3), new_points (B, 1, 3)) tensors."""
    arrs = [points_array(c) for c in clicks_list]
    n = max(a.shape[0] for a in arrs) // 2
    pts = np.full((len(arrs), 2 * n, 3), -1.0, dtype=np.float32)
    for i, a in enumerate(arrs):
        k = a.shape[0] // 2
        pts[i, :k] = a[:k]
        pts[i, n : n + k] = a[k:]
    new = np.stack([new_points_array(c) for c in clicks_list]).astype(np.float32)
    return torch.from_numpy(pts).to(device), torch.from_numpy(new).to(device)


def simulate_clicks(model, images, targets, clicks_list, n_iter, threshold=0.49):
    """Run ``n_iter`` robot-click rounds without gradients; returns (prev_mask, gate).

    ``clicks_list`` is extended in place with one robot click per sample and round.
    """
    b, _, h, w = images.shape
    prev = torch.zeros(b, 1, h, w, dtype=images.dtype, device=images.device)
    gate = 0.0
    for _ in range(n_iter):
        pts, new = _to_batch(clicks_list, images.device)
        with torch.no_grad():
            prob = torch.sigmoid(model(images, prev, pts, new, gate)["instances"])
        pred = (prob[:, 0] > threshold).cpu().numpy()
        for i in range(b):
            c = robot_click(targets[i], pred[i])
            if c is not None:
                clicks_list[i].append(c)
        prev, gate = prob, 1.0
    return prev, gate


def compute_losses(out, target_t, new_points, ratio):
    """Weighted NFL terms; returns (total, dict of floats)."""
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


def build_model(cfg: TrainConfig) -> FCFILite:
    """The network to train: ImageNet backbone (``init=None``) or a trained FCFI-Lite."""
    if cfg.init is None:
        return pretrained_model(**cfg.model_params)
    from ..model.lite import resolve_weights

    return load_lite(resolve_weights(cfg.init))


def make_optimizer(model: FCFILite, cfg: TrainConfig) -> torch.optim.Adam:
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    return torch.optim.Adam(
        [
            {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult, "base": cfg.backbone_lr_mult},
            {"params": rest, "lr": cfg.lr, "base": 1.0},
        ],
        lr=cfg.lr,
    )


class ValidationSet:
    """Fixed objects of held-out images, each in a window at native scale, for quick scoring.

    :meth:`evaluate` runs ``clicks`` robot clicks per object (eval mode, feedback on) and
    returns the mean IoU after each click.
    """

    def __init__(self, items, n_objects: int, size: int = 256, seed: int = 1234) -> None:
        from ..inference.normalize import to_model_rgb
        from .data import _crop_window, _extract

        rng = np.random.default_rng(seed)
        pool = [(i, k) for i, it in enumerate(items) for k in range(len(it.objects))]
        pick = rng.choice(len(pool), size=min(n_objects, len(pool)), replace=False)
        self.images, self.targets = [], []
        for j in sorted(pick):
            i, k = pool[j]
            it = items[i]
            win = min(size, it.labels.shape[0], it.labels.shape[1])
            y0, x0 = _crop_window(it.labels.shape, it.centres[k], win, rng)
            lab = _extract(it.labels, y0, x0, win, 0)
            img = to_model_rgb(_extract(it.image, y0, x0, win, 0), "auto", it.intensity)
            self.images.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
            self.targets.append(lab == it.objects[k])

    def evaluate(self, model, clicks: int = 3, batch: int = 8) -> list[float]:
        ious = np.zeros((len(self.images), clicks))
        was_training = model.training
        model.eval()
        try:
            for s in range(0, len(self.images), batch):
                shapes = {tuple(im.shape) for im in self.images[s : s + batch]}
                for shape in shapes:  # group equal window sizes
                    idx = [
                        j
                        for j in range(s, min(s + batch, len(self.images)))
                        if tuple(self.images[j].shape) == shape
                    ]
                    imgs = torch.stack([self.images[j] for j in idx])
                    tg = [self.targets[j] for j in idx]
                    cl = [[] for _ in idx]
                    prev = torch.zeros(len(idx), 1, *shape[1:])
                    gate = 0.0
                    for c in range(clicks):
                        pred = (prev[:, 0] > 0.49).numpy()
                        for i in range(len(idx)):
                            nc = robot_click(tg[i], pred[i])
                            cl[i].append(nc if nc is not None else cl[i][-1])
                        pts, new = _to_batch(cl, imgs.device)
                        with torch.no_grad():
                            prev = torch.sigmoid(model(imgs, prev, pts, new, gate)["instances"])
                        gate = 1.0
                        p = (prev[:, 0] > 0.49).numpy()
                        for i, j in enumerate(idx):
                            inter = np.logical_and(p[i], tg[i]).sum()
                            union = np.logical_or(p[i], tg[i]).sum()
                            ious[j, c] = inter / max(union, 1)
        finally:
            model.train(was_training)
        return ious.mean(axis=0).tolist()


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig, progress: bool = True, resume: bool = False) -> dict:
    """Run (or resume) a training; writes the final weights to ``cfg.out``; returns a summary."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, progress, resume)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, progress: bool, resume: bool) -> dict:
    from tqdm import tqdm

    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and not ckpt_path.is_file():
        raise ValueError(f"--resume: no checkpoint at {ckpt_path}")

    names = sorted(p.name.split(".")[0] for p in Path(cfg.images).iterdir() if p.is_file())
    train_ids, val_ids = split_ids(names, cfg.val_fraction)
    if not train_ids:
        raise ValueError("the validation split leaves no training image; lower --val-fraction")
    items = load_items(cfg.images, cfg.labels, train_ids)
    val_items = load_items(cfg.images, cfg.labels, val_ids) if val_ids else []
    validation = ValidationSet(val_items, cfg.val_objects) if val_items else None
    gen = SampleGenerator(items, AugmentConfig(crop=cfg.crop, scale_range=tuple(cfg.scale_range)))

    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    model.train()
    opt = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed, best = 0, 0.0, -1.0
    if resume:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        step, elapsed, best = ck["step"], ck["elapsed"], ck["best"]

    def checkpoint():
        _save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "elapsed": elapsed,
                "best": best,
                "config": asdict(cfg),
            },
        )

    log = (run_dir / "log.jsonl").open("a")
    ratio = model.params["expansion_ratio"]
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", unit="step")
    t_start = time.time() - elapsed
    bad_steps = 0
    while step < cfg.steps:
        if cfg.time_limit and elapsed >= 60.0 * cfg.time_limit:
            break
        t0 = time.time()
        samples = [gen.sample(rng) for _ in range(cfg.batch)]
        clicks = [sample_points(s["target"], s["labels"], rng) for s in samples]
        n_iter = int(rng.integers(cfg.max_robot_clicks + 1))
        images = torch.from_numpy(np.stack([s["image"] for s in samples]))
        targets = [s["target"] for s in samples]
        target_t = torch.from_numpy(np.stack(targets)[:, None].astype(np.float32))
        prev, gate = simulate_clicks(model, images, targets, clicks, n_iter)
        pts, new = _to_batch(clicks, images.device)
        out = model(images, prev, pts, new, gate)
        loss, terms = compute_losses(out, target_t, new, ratio)
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
            "loss": float(loss.detach()),
            **terms,
            "n_iter": n_iter,
            "lr": cfg.lr * f,
            "s_per_step": time.time() - t0,
            "elapsed": elapsed,
        }
        if validation is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            miou = validation.evaluate(model)
            rec["val_miou"] = miou
            score = float(np.mean(miou))
            if score > best:
                best = score
                save_lite(model, run_dir / "best.safetensors", extra={"step": step})
        log.write(json.dumps(rec) + "\n")
        log.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", s_step=f"{rec['s_per_step']:.2f}")
        if step % cfg.ckpt_every == 0:
            checkpoint()
    bar.close()
    checkpoint()
    log.close()
    info = {
        "training": {
            "steps": step,
            "batch": cfg.batch,
            "crop": cfg.crop,
            "wall_time_s": round(elapsed, 1),
            "init": cfg.init or "imagenet:efficientnet-lite0",
            "train_images": len(items),
            "val_images": len(val_items),
            "seed": cfg.seed,
        }
    }
    save_lite(model, cfg.out, extra=info)
    return {"steps": step, "elapsed": elapsed, "best": best, "out": str(cfg.out)}
