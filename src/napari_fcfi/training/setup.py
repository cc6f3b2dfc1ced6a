"""The network and the optimiser a training run starts from: a new model or a trained
one (a warm start that copies every matching parameter), the backbone's fixed early
blocks, and Adam with the backbone at a lower rate."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..model.lite import FCFILite, load_lite, pretrained_model


def build_model(cfg) -> FCFILite:
    """The network to train: ImageNet backbone (``init=None``) or a trained FCFI-Lite.

    With ``init`` and ``model_params`` that add parts (e.g. ``half_res_refine``), every
    parameter of the trained network whose name and shape match is copied (a warm start);
    the new parts keep their initialisation.
    """
    if cfg.init is None:
        return pretrained_model(**cfg.model_params)
    from ..model.lite import resolve_weights

    src = load_lite(resolve_weights(cfg.init))
    src.training_before = _samples_seen(resolve_weights(cfg.init))
    params = {**src.params, **cfg.model_params}
    if params == src.params:
        return src
    model = FCFILite(**params)
    model.inference_defaults = dict(src.inference_defaults)
    model.training_before = src.training_before
    own = model.state_dict()
    copied = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
    own.update(copied)
    model.load_state_dict(own)
    return model


def freeze_early_backbone(model: FCFILite, blocks: int) -> int:
    """Stop training the backbone stem and its first ``blocks`` MBConv blocks; returns the
    number of frozen parameter tensors (0 when ``blocks`` is 0)."""
    if blocks <= 0:
        return 0
    prefixes = ("backbone._conv_stem.", "backbone._bn0.") + tuple(
        f"backbone._blocks.{i}." for i in range(blocks)
    )
    n = 0
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)
            n += 1
    return n


def _samples_seen(weights: Path) -> int:
    """Training samples behind a weights file (its JSON's ``training.samples_total``, or
    ``steps x batch``; 0 when unknown)."""
    from ..model.lite import config_path

    try:
        info = json.loads(config_path(weights).read_text()).get("training", {})
        if "samples_total" in info:
            return int(info["samples_total"])
        return int(info.get("steps", 0)) * int(info.get("batch", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def make_optimizer(model: FCFILite, cfg) -> torch.optim.Adam:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    backbone = [p for n, p in trainable if n.startswith("backbone.")]
    rest = [p for n, p in trainable if not n.startswith("backbone.")]
    return torch.optim.Adam(
        [
            {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult, "base": cfg.backbone_lr_mult},
            {"params": rest, "lr": cfg.lr, "base": 1.0},
        ],
        lr=cfg.lr,
    )
