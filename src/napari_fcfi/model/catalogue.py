"""The built-in models: the weights shipped in ``napari_fcfi/weights/``, by name.

Every ``<name>.safetensors`` there, with its ``<name>.json`` config, is a built-in model
that the widget, the command lines and :func:`~napari_fcfi.model.io.load_model` accept by
name. This module reads the configs without importing torch, so the model picker and the
command lines can list the models, what each is for and their presets before any network
is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

#: the folder of the shipped weights
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the model used when none is named (also accepted as ``"builtin"``)
DEFAULT_MODEL = "fcfi-lite"


def builtin_names(weights_dir: Path | None = None, default: str = DEFAULT_MODEL) -> list[str]:
    """Names of the built-in models: ``default`` first, then the others by name."""
    folder = Path(WEIGHTS_DIR if weights_dir is None else weights_dir)
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.safetensors"))
    return sorted(names, key=lambda name: name != default)


def model_option_help() -> str:
    """The help of a command's ``--model`` option: a built-in model's name or a checkpoint."""
    names = ", ".join(builtin_names())
    return f"a built-in model's name ({names}) or a checkpoint path (default: {DEFAULT_MODEL})"


def weights_path(name: str, weights_dir: Path | None = None) -> Path:
    """The weights file of the built-in model ``name`` (``"builtin"``: the default).

    Raises ``ValueError`` naming the built-in models for any other name.
    """
    folder = Path(WEIGHTS_DIR if weights_dir is None else weights_dir)
    name = DEFAULT_MODEL if name == "builtin" else name
    names = builtin_names(folder)
    if name not in names:
        raise ValueError(
            f"unknown built-in model {name!r}; the built-in models are "
            f"{', '.join(names) or 'none (the weights folder is empty)'}"
        )
    return folder / f"{name}.safetensors"


def builtin_config(name: str = DEFAULT_MODEL, weights_dir: Path | None = None) -> dict:
    """The JSON config of the built-in model ``name``."""
    return json.loads(weights_path(name, weights_dir).with_suffix(".json").read_text())


def description(name: str, weights_dir: Path | None = None) -> str:
    """What the built-in model ``name`` is for, in a few words (its config's
    ``description``; the name itself when the config has none)."""
    return str(builtin_config(name, weights_dir).get("description") or name)
