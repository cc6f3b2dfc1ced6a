"""scripts/package_weights.py: a training run's weights become the built-in model's files."""

from __future__ import annotations

import json

import torch

from _training_helpers import load_script
from napari_fcfi.model.lite import BUILTIN_WEIGHTS, config_path, load_lite, save_lite


def _script():
    return load_script("package_weights")


def _run_output(tmp_path, samples_total, wall_time_s=600.0):
    """What ``napari-fcfi train --out`` writes: float32 weights and the run's record."""
    model = load_lite(BUILTIN_WEIGHTS)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a changed network at float32 precision, as a run leaves it
        for p in model.parameters():
            p.mul_(1.0 + 1e-3 * torch.randn(p.shape, generator=g))
        model.head[-1].bias.add_(0.25)
    model.inference_defaults = {"zoom_in_target_size": 256}  # not what ships
    record = {
        "steps": 10,
        "samples": 80,
        "samples_total": samples_total,
        "batch": 8,
        "crop": 128,
        "wall_time_s": wall_time_s,
        "init": "fcfi-lite",
        "datasets": {"dsb2018": [526, 65]},
        "seed": 9,
    }
    return save_lite(model, tmp_path / "run" / "out.safetensors", extra={"training": record}), model


def test_run_is_packaged_in_fp16_with_the_shipped_defaults_and_notes(tmp_path):
    shipped = json.loads(config_path(BUILTIN_WEIGHTS).read_text())
    before = shipped["training"]
    src, model = _run_output(tmp_path, before["samples_total"] + 80)
    dest = tmp_path / "ship" / "fcfi-lite.safetensors"
    dest.parent.mkdir()
    assert _script().main([str(src), "--dest", str(dest)]) == 0

    cfg = json.loads(config_path(dest).read_text())
    assert cfg["inference_defaults"] == shipped["inference_defaults"]
    assert cfg["data"] == shipped["data"]
    assert cfg["description"] == shipped["description"]
    t = cfg["training"]
    assert t["samples_total"] == before["samples_total"] + 80
    assert t["cpu_minutes_total"] == before["cpu_minutes_total"] + 10
    assert f"{before['samples_total']:,}" in t["init"]
    from safetensors import safe_open

    with safe_open(str(dest), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {
            torch.float16
        }
    loaded = load_lite(dest)
    assert torch.allclose(loaded.head[-1].bias, model.head[-1].bias, atol=1e-3)
    assert not list(dest.parent.glob("*.tmp.*"))


def test_a_run_that_does_not_continue_the_weights_is_refused(tmp_path, capsys):
    before = json.loads(config_path(BUILTIN_WEIGHTS).read_text())["training"]
    src, _ = _run_output(tmp_path, before["samples_total"])  # no sample added
    dest = tmp_path / "ship.safetensors"
    assert _script().main([str(src), "--dest", str(dest)]) == 2
    assert "does not continue" in capsys.readouterr().err
    assert not dest.exists()


def test_missing_run_weights_are_reported(tmp_path, capsys):
    assert _script().main([str(tmp_path / "none.safetensors"), "--dest", str(tmp_path / "d")]) == 2
    assert "not found" in capsys.readouterr().err


def test_fp16_error_over_the_tolerance_leaves_no_file(tmp_path, capsys):
    before = json.loads(config_path(BUILTIN_WEIGHTS).read_text())["training"]
    src, _ = _run_output(tmp_path, before["samples_total"] + 80)
    dest = tmp_path / "ship.safetensors"
    args = [str(src), "--dest", str(dest), "--tolerance", "0"]
    assert _script().main(args) == 1
    assert "fp16 changes the logits" in capsys.readouterr().err
    assert not dest.exists() and not list(tmp_path.glob("*.json"))


def test_a_new_builtin_model_gets_its_own_description_and_starting_point(tmp_path):
    before = json.loads(config_path(BUILTIN_WEIGHTS).read_text())["training"]
    src, _ = _run_output(tmp_path, before["samples_total"] + 80)
    dest = tmp_path / "fcfi-lite-other.safetensors"
    args = [str(src), "--dest", str(dest), "--description", "other things"]
    assert _script().main([*args, "--init-note", "the other run's weights", "--no-presets"]) == 0
    cfg = json.loads(config_path(dest).read_text())
    assert cfg["description"] == "other things"
    assert not cfg.get("presets")
    assert (
        cfg["inference_defaults"]
        == json.loads(config_path(BUILTIN_WEIGHTS).read_text())["inference_defaults"]
    )
    assert cfg["training"]["init"] == "the other run's weights"
