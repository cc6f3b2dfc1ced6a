"""Loading and saving FCFI networks.

Two checkpoint formats are read:

* **official** (the FCFI/isegm release files, e.g. ``hrnet18s_cocolvis.pth``): a
  ``torch.save``'d dict ``{"state_dict": ..., "config": {"class": ..., "params": ...}}``.
  It is read with ``torch.load(weights_only=True)``, so nothing beyond tensors and plain
  containers is ever unpickled (a pickle that carries code is refused, not executed);
* **ours**: ``<name>.safetensors`` (tensors only) plus ``<name>.json`` next to it holding
  ``{"format": "napari-fcfi", "class": ..., "params": {...}, "inference_defaults": {...}}``,
  written by :func:`save_model`.

The network class is looked up by name in :data:`MODEL_CLASSES` (official dotted names and
our own), its parameters are rebuilt from the config and the weights are matched
*strictly*: any missing, unexpected or mis-shaped entry is an error that lists the first few.

``load_model(None)`` loads the built-in default :data:`DEFAULT_MODEL` from
``napari_fcfi/weights/``; every ``<name>.safetensors`` there is a registered name.
"""

from __future__ import annotations

import importlib
import json
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..devices import pick_device
from .catalogue import DEFAULT_MODEL, WEIGHTS_DIR, builtin_names

__all__ = [
    "CheckpointError",
    "DEFAULT_MODEL",
    "MODEL_CLASSES",
    "WEIGHTS_DIR",
    "available_models",
    "build_model",
    "load_checkpoint",
    "load_model",
    "load_state_dict_strict",
    "model_config",
    "register_model_class",
    "save_model",
]

OUR_FORMAT = "napari-fcfi"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: wrong format, corrupt, unknown class, mismatch."""


# ---------------------------------------------------------------- class registry
def _lazy(module: str, name: str) -> Callable[..., nn.Module]:
    def build(**params):
        cls = getattr(importlib.import_module(module, __package__), name)
        if hasattr(cls, "from_config") and "arch" in params:
            return cls.from_config(params)
        return cls(**params)

    build.__qualname__ = f"{module}.{name}"
    return build


#: class name (as stored in a checkpoint config) -> builder ``f(**params) -> nn.Module``
MODEL_CLASSES: dict[str, Callable[..., nn.Module]] = {}


def register_model_class(builder: Callable[..., nn.Module], *names: str) -> None:
    """Make ``builder(**params)`` available under each of ``names`` for checkpoint loading."""
    for name in names:
        MODEL_CLASSES[name] = builder


register_model_class(
    _lazy(".hrnet_model", "HRNetModel"),
    "isegm.model.is_hrnet_model.HRNetModel",
    "napari_fcfi.model.hrnet_model.HRNetModel",
    "HRNetModel",
)
register_model_class(
    _lazy(".deeplab", "DeeplabModel"),
    "isegm.model.is_deeplab_model.DeeplabModel",
    "napari_fcfi.model.deeplab.DeeplabModel",
    "DeeplabModel",
)
register_model_class(
    _lazy(".lite", "FCFILite"), "napari_fcfi.model.lite.FCFILite", "FCFILite", "fcfi-lite"
)

#: classes that an official config may name as a parameter value (``"type": "class"``)
_PARAM_CLASSES: dict[str, type] = {
    "torch.nn.modules.batchnorm.BatchNorm2d": nn.BatchNorm2d,
    "torch.nn.BatchNorm2d": nn.BatchNorm2d,
    "torch.nn.modules.batchnorm.SyncBatchNorm": nn.BatchNorm2d,  # same inference numerics
}


_CLASS_PARAMS = ("norm_layer", "backbone_norm_layer")


def _param_value(name: str, spec) -> object:
    if isinstance(spec, Mapping) and "value" in spec:
        value, is_class = spec["value"], spec.get("type") == "class"
    else:
        value, is_class = spec, name in _CLASS_PARAMS and isinstance(spec, str)
    if is_class and value is not None:
        if value not in _PARAM_CLASSES:
            raise CheckpointError(f"parameter {name!r} names an unsupported class {value!r}")
        return _PARAM_CLASSES[value]
    if name == "norm_mean_std" and value is not None:
        return (tuple(value[0]), tuple(value[1]))
    return value


def build_model(config: Mapping) -> nn.Module:
    """An (untrained) network from a checkpoint config (official or ours)."""
    if not isinstance(config, Mapping) or "class" not in config:
        raise CheckpointError("the checkpoint config has no 'class' entry")
    cls_name = str(config["class"])
    if cls_name not in MODEL_CLASSES:
        known = ", ".join(sorted(MODEL_CLASSES))
        raise CheckpointError(f"unknown model class {cls_name!r}; known classes: {known}")
    raw = config.get("params", {}) or {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise CheckpointError(
            f"the checkpoint config's 'params' must map names to values, got {raw!r:.80}"
        )
    try:
        params = {k: _param_value(k, v) for k, v in raw.items()}
    except (TypeError, IndexError, KeyError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"invalid parameter in the checkpoint config: {exc!r:.120}") from None
    defaults = config.get("inference_defaults") or {}
    if not isinstance(defaults, Mapping):
        raise CheckpointError(
            f"the checkpoint config's 'inference_defaults' must be a mapping, got {defaults!r:.80}"
        )
    if "arch" in config:  # our Lite config: the class rebuilds itself from the whole config
        params = dict(config)
    try:
        model = MODEL_CLASSES[cls_name](**params)
    except CheckpointError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError, RecursionError) as exc:
        raise CheckpointError(
            f"cannot build {cls_name} from the config: {str(exc)[:300]}"
        ) from None
    model.fcfi_config = {"class": cls_name, "params": _plain_params(raw)}
    if defaults:
        model.inference_defaults = dict(defaults)
    return model


def _plain_params(raw: Mapping) -> dict:
    """Official ``{"type", "value", "specified"}`` params -> plain JSON values."""
    out = {}
    for k, v in raw.items():
        out[k] = v["value"] if isinstance(v, Mapping) and "value" in v else v
        if isinstance(out[k], tuple):
            out[k] = [list(t) if isinstance(t, tuple) else t for t in out[k]]
    return out


def model_config(model: nn.Module) -> dict:
    """The JSON config describing ``model`` (``class``, ``params``, ``inference_defaults``)."""
    if callable(getattr(model, "config", None)):
        cfg = dict(model.config())
    elif getattr(model, "fcfi_config", None) is not None:
        cfg = {"class": model.fcfi_config["class"], "params": dict(model.fcfi_config["params"])}
    elif getattr(model, "params", None) is not None and hasattr(model, "official_class"):
        cfg = {"class": model.official_class, "params": dict(model.params)}
    else:
        raise ValueError(
            f"{type(model).__name__} does not describe itself (no config(), fcfi_config or "
            "params); build it with build_model() or load_model() to save it"
        )
    cfg["format"] = OUR_FORMAT
    cfg.setdefault("inference_defaults", dict(getattr(model, "inference_defaults", {}) or {}))
    return cfg


# ---------------------------------------------------------------- strict matching
def load_state_dict_strict(model: nn.Module, state_dict: Mapping, max_list: int = 5) -> None:
    """``model.load_state_dict(strict=True)`` with a readable error on any mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict
        and (not isinstance(state_dict[k], torch.Tensor) or state_dict[k].shape != own[k].shape)
    ]
    problems = []
    for title, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", mismatched),
    ):
        if items:
            shown = "; ".join(items[:max_list])
            more = f" (+{len(items) - max_list} more)" if len(items) > max_list else ""
            problems.append(f"{len(items)} {title}: {shown}{more}")
    if problems:
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__}: " + " | ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)


# ---------------------------------------------------------------- reading files
def _kind(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if head[:1] == b"\x80":
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"{":
        return "json"
    return "unknown"


def _our_pair(path: Path) -> tuple[Path, Path]:
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    return path, path.with_suffix(".json")


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(state_dict, config)`` of a checkpoint file in either format (tensors on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    kind = _kind(path)
    if kind in ("safetensors", "json"):
        return _load_ours(path)
    if kind == "unknown":
        raise CheckpointError(
            f"{path} is not a checkpoint (neither a torch.save file nor safetensors)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it contains Python objects other than tensors and plain "
            f"containers (possibly code), which are never unpickled ({exc.__class__.__name__})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {exc}") from None
    if not isinstance(obj, Mapping) or "state_dict" not in obj or "config" not in obj:
        what = sorted(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not an FCFI checkpoint: expected a dict with 'state_dict' and "
            f"'config', found {what}"
        )
    state, config = obj["state_dict"], obj["config"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    return dict(state), dict(config)


def _load_ours(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, cfg_path = _our_pair(path)
    for p in (weights, cfg_path):
        if not p.exists():
            raise FileNotFoundError(
                f"{p} not found: a napari-fcfi checkpoint is a .safetensors file with a .json "
                "config next to it"
            )
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{cfg_path} is not a usable config: nested too deeply") from None
    if not isinstance(config, dict) or config.get("format") != OUR_FORMAT:
        raise CheckpointError(f"{cfg_path} is not a napari-fcfi config (format != {OUR_FORMAT!r})")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is truncated or corrupt: {exc}") from None
    return state, config


# ---------------------------------------------------------------- public API
def available_models() -> list[str]:
    """Names of the built-in models (``napari_fcfi/weights/<name>.safetensors``), the
    default first."""
    return builtin_names(WEIGHTS_DIR, DEFAULT_MODEL)


def _resolve(source) -> Path:
    if source is None or source == "builtin":
        path = WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors"
        if not path.exists():
            raise FileNotFoundError(
                f"the built-in model {DEFAULT_MODEL!r} is not installed: {path} is missing "
                "(pass a checkpoint path to load_model instead)"
            )
        return path
    if isinstance(source, str) and source in available_models():
        return WEIGHTS_DIR / f"{source}.safetensors"
    path = Path(source).expanduser()
    if not path.exists():
        names = ", ".join(available_models()) or "none installed"
        raise FileNotFoundError(
            f"checkpoint file not found: {path} (built-in model names: {names})"
        )
    return path


def load_model(source=None, device=None) -> nn.Module:
    """An FCFI network in eval mode.

    ``source``: ``None`` (the built-in default), a built-in name, or a checkpoint path in the
    official or our format. ``device``: ``None`` picks CUDA, then MPS, then the CPU.
    """
    path = _resolve(source)
    state, config = load_checkpoint(path)
    model = build_model(config)
    load_state_dict_strict(model, state)
    dev = pick_device(device)
    model = model.to(dev).eval()
    if dev.type in ("cpu", "cuda"):
        # NHWC weights match the NHWC activations the models use (no per-call reorders)
        model = model.to(memory_format=torch.channels_last)
    model.checkpoint_path = str(path)
    return model


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` in our format: ``<path>.safetensors`` + ``<path>.json``.

    Returns the path of the ``.safetensors`` file.
    """
    from safetensors.torch import save_file

    path = Path(path)
    weights = path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")
    config = model_config(model)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights), metadata={"format": OUR_FORMAT})
    weights.with_suffix(".json").write_text(json.dumps(config, indent=1))
    return weights
