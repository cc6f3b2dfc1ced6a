"""Checkpoint configs that are not a model: always a CheckpointError, never another crash."""

from __future__ import annotations

import json

import pytest
import torch

from napari_fcfi.model.io import CheckpointError, build_model, load_model
from napari_fcfi.model.lite import FCFILite, load_lite, save_lite


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_lite(FCFILite(), tmp_path_factory.mktemp("lite") / "m.safetensors")


def _copy_with(tmp_path, weights, edit):
    path = tmp_path / "c.safetensors"
    path.write_bytes(weights.read_bytes())
    cfg = json.loads(weights.with_suffix(".json").read_text())
    edit(cfg)
    text = cfg if isinstance(cfg, str) else json.dumps(cfg)
    path.with_suffix(".json").write_text(text)
    return path


def _set(key, value):
    def edit(cfg):
        cfg[key] = value

    return edit


def _param(name, value):
    def edit(cfg):
        cfg["params"][name] = value

    return edit


BAD_CONFIGS = {
    "params is a list": _set("params", [1, 2, 3]),
    "params is a string": _set("params", "fpn_channels=48"),
    "params is a number": _set("params", 7),
    "width is negative": _param("fpn_channels", -1),
    "width is huge": _param("feature_channels", 10**12),
    "width is a string": _param("head_channels", "sixty-four"),
    "width is a list": _param("ffcm_channels", [32]),
    "width is a float": _param("cffm_channels", 31.5),
    "ratio is NaN": _param("expansion_ratio", float("nan")),
    "ratio is zero": _param("expansion_ratio", 0),
    "radius is negative": _param("norm_radius", -5.0),
    "switch is a string": _param("with_aux_output", "yes"),
    "unknown parameter": _param("dropout", 0.5),
    "nested value": _param("norm_radius", {"value": {"value": 5}}),
    "defaults are a list": _set("inference_defaults", [["zoom_in_target_size", 256]]),
    "defaults hold a dict": _set("inference_defaults", {"zoom_in_target_size": {"a": 1}}),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_params_raise_checkpoint_error(tmp_path, weights, case):
    path = _copy_with(tmp_path, weights, BAD_CONFIGS[case])
    with pytest.raises(CheckpointError):
        load_lite(path)
    with pytest.raises(CheckpointError):
        load_model(path, device="cpu")


def test_deeply_nested_config_is_a_checkpoint_error(tmp_path, weights):
    path = _copy_with(tmp_path, weights, lambda cfg: None)
    text = path.with_suffix(".json").read_text()
    deep = "[" * 100_000 + "]" * 100_000
    path.with_suffix(".json").write_text(
        text.replace('"params": {', f'"deep": {deep}, "params": {{')
    )
    with pytest.raises(CheckpointError, match="JSON|nested"):
        load_lite(path)
    with pytest.raises(CheckpointError):
        load_model(path, device="cpu")


def test_corrupt_or_mismatched_weights_are_checkpoint_errors(tmp_path, weights):
    path = _copy_with(tmp_path, weights, lambda cfg: None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_lite(path)
    # a config whose widths do not match the weights
    path = _copy_with(tmp_path, weights, _param("head_channels", 32))
    with pytest.raises(CheckpointError, match="head"):
        load_lite(path)
    with pytest.raises(CheckpointError):
        load_model(path, device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_lite(tmp_path / "absent.safetensors")


def test_build_model_rejects_malformed_params():
    for params in ([1, 2], "x", 3):
        with pytest.raises(CheckpointError, match="params"):
            build_model({"class": "HRNetModel", "params": params})
    with pytest.raises(CheckpointError):
        build_model({"class": "HRNetModel", "params": {"norm_mean_std": 5}})
    with pytest.raises(CheckpointError):
        build_model({"class": "HRNetModel", "params": {"width": -4}})
    with pytest.raises(CheckpointError, match="inference_defaults"):
        build_model({"class": "HRNetModel", "params": {}, "inference_defaults": [1]})


def test_good_config_still_loads(tmp_path, weights):
    model = load_lite(weights)
    assert isinstance(model, FCFILite) and not model.training
    cfg = json.loads(weights.with_suffix(".json").read_text())
    assert FCFILite.from_config(cfg).params == model.params
