"""The built-in models by name: the catalogue of shipped weights, read without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from napari_fcfi.annotation.predictors import builtin_thresholds
from napari_fcfi.model import catalogue
from napari_fcfi.model.catalogue import (
    DEFAULT_MODEL,
    builtin_config,
    builtin_names,
    description,
    weights_path,
)
from napari_fcfi.model.io import available_models
from napari_fcfi.model.lite import resolve_weights


def _folder(tmp_path, *names):
    for name in names:
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
        (tmp_path / f"{name}.json").write_text(json.dumps({"description": f"{name} things"}))
    return tmp_path


def test_the_default_model_comes_first_then_the_others_by_name(tmp_path):
    folder = _folder(tmp_path, "zeta", DEFAULT_MODEL, "alpha")
    assert builtin_names(folder) == [DEFAULT_MODEL, "alpha", "zeta"]
    assert description("alpha", folder) == "alpha things"
    assert weights_path("builtin", folder) == folder / f"{DEFAULT_MODEL}.safetensors"


def test_an_unknown_name_says_which_models_exist(tmp_path):
    folder = _folder(tmp_path, DEFAULT_MODEL, "cells")
    with pytest.raises(ValueError, match=r"unknown built-in model 'nucleus'.*fcfi-lite, cells"):
        weights_path("nucleus", folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert builtin_names(empty) == []
    with pytest.raises(ValueError, match="none"):
        weights_path(DEFAULT_MODEL, empty)


def test_every_shipped_model_is_described_and_named_everywhere():
    names = builtin_names()
    assert names[0] == DEFAULT_MODEL
    assert available_models() == names
    for name in names:
        cfg = builtin_config(name)
        assert cfg["format"] == "napari-fcfi"
        assert len(description(name)) > 10 and description(name) != name, name
        assert resolve_weights(name) == catalogue.WEIGHTS_DIR / f"{name}.safetensors"
        kinds = builtin_thresholds(name)
        assert "any" in kinds and all(0 < t < 1 for pair in kinds.values() for t in pair)


def test_the_catalogue_reads_without_torch():
    code = (
        "import sys; from napari_fcfi.model.catalogue import builtin_names, description; "
        "[description(n) for n in builtin_names()]; "
        "from napari_fcfi.cli import build_parser; build_parser(); "
        "assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_shipped_weights_fit_the_wheel_budget():
    """Every built-in model ships in the wheel; together they stay within 20 MB."""
    total = sum(
        (catalogue.WEIGHTS_DIR / f"{n}.safetensors").stat().st_size for n in builtin_names()
    )
    assert total <= 20e6, f"{total / 1e6:.1f} MB of built-in weights"
