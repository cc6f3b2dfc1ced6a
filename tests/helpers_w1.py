"""Test helpers: official-config FCFI models with the conformance W1 weights.

``w1_model(conformance_dir, "h18s")`` / ``"r101"`` builds the network from the case's
``config.json`` through :func:`napari_fcfi.model.io.build_model` (the same path an official
checkpoint takes), fills it with formula-W1 weights computed from ``keys.json`` and loads
them with strict matching. Models are cached per process (they are not modified by
inference; do not train them).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from napari_fcfi.model.io import build_model, load_state_dict_strict
from w1 import w1_state_dict


def official_config(conformance_dir, name: str) -> dict:
    """The official ``_config`` of model ``name`` (``_json_notes`` dropped, tuples restored)."""
    cfg = json.loads((Path(conformance_dir) / name / "config.json").read_text())
    cfg.pop("_json_notes", None)
    nms = cfg["params"].get("norm_mean_std")
    if nms is not None:
        nms["value"] = tuple(nms["value"])
    return cfg


def official_keys(conformance_dir, name: str) -> list:
    return json.loads((Path(conformance_dir) / name / "keys.json").read_text())


@lru_cache(maxsize=4)
def _cached(conformance_dir: str, name: str) -> torch.nn.Module:
    model = build_model(official_config(conformance_dir, name))
    load_state_dict_strict(model, w1_state_dict(official_keys(conformance_dir, name)))
    return model.eval()


def w1_model(conformance_dir, name: str) -> torch.nn.Module:
    """Official-config model ``name`` ("h18s" or "r101") with W1 weights, in eval mode."""
    return _cached(str(Path(conformance_dir)), name)


def load_case(conformance_dir, name: str, case: str) -> dict:
    """A network-level case as tensors ready for the forward contract, plus the raw arrays."""
    d = dict(np.load(Path(conformance_dir) / name / f"{case}.npz"))
    d["t_image"] = torch.from_numpy(d["image"].transpose(2, 0, 1)[None].copy())
    d["t_prev_mask"] = torch.from_numpy(d["prev_mask"][None, None].copy())
    d["t_points"] = torch.from_numpy(d["points"])
    d["t_new_points"] = torch.from_numpy(d["new_points"]).long()
    return d


def run_case(model, d: dict, **kwargs) -> dict:
    """Forward a case (``load_case``) through ``model``; numpy (H, W) outputs."""
    with torch.inference_mode():
        out = model(
            d["t_image"], d["t_prev_mask"], d["t_points"], d["t_new_points"], float(d["gate"]),
            **kwargs,
        )  # fmt: skip
    return {k: v[0, 0].numpy() for k, v in out.items()}
