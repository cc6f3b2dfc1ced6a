"""Checkpoint I/O: official format (strict, weights_only), our format, every bad-file case."""

from __future__ import annotations

import json
import pathlib
from collections import OrderedDict

import pytest
import torch

from helpers_w1 import official_config, official_keys
from napari_fcfi.devices import pick_device
from napari_fcfi.model import io as mio
from napari_fcfi.model.io import CheckpointError, load_model, save_model
from w1 import w1_state_dict


def _official_file(tmp_path, conformance_dir, name="h18s", state=None, config=None):
    state = (
        state
        if state is not None
        else OrderedDict(w1_state_dict(official_keys(conformance_dir, name)))
    )
    config = config if config is not None else official_config(conformance_dir, name)
    path = tmp_path / f"{name}.pth"
    torch.save({"state_dict": state, "config": config}, path)
    return path


@pytest.fixture(scope="module")
def h18s_file(tmp_path_factory, conformance_dir):
    return _official_file(tmp_path_factory.mktemp("ckpt"), conformance_dir)


@pytest.mark.parametrize("name", ["h18s", "r101"])
def test_official_w1_checkpoint_loads_strict(tmp_path, conformance_dir, name):
    path = _official_file(tmp_path, conformance_dir, name)
    model = load_model(path, device="cpu")
    assert not model.training
    keys = official_keys(conformance_dir, name)
    sd = model.state_dict()
    assert [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()] == keys
    ref = w1_state_dict(keys)
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


def test_official_config_params_are_read(tmp_path, conformance_dir):
    cfg = official_config(conformance_dir, "h18s")
    cfg["params"]["small"]["value"] = True
    cfg["params"]["expansion_ratio"]["value"] = 0.5
    model = mio.build_model(cfg)
    assert len(model.state_dict()) < 1961  # small HRNet: fewer blocks and modules
    assert model.feature_extractor.correction_module.expansion_ratio == 0.5


def test_our_format_round_trip(tmp_path, h18s_file):
    model = load_model(h18s_file, device="cpu")
    weights = save_model(model, tmp_path / "mine")
    assert weights.suffix == ".safetensors" and weights.with_suffix(".json").exists()
    cfg = json.loads(weights.with_suffix(".json").read_text())
    assert cfg["format"] == "napari-fcfi" and cfg["class"] == model.fcfi_config["class"]
    again = load_model(weights, device="cpu")
    assert type(again) is type(model)
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert again.inference_defaults == model.inference_defaults
    # the json path works as well
    assert type(load_model(weights.with_suffix(".json"), device="cpu")) is type(model)
    # identical outputs on a small input
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 64, 96, generator=g)
    prev = torch.zeros(1, 1, 64, 96)
    pts = torch.tensor([[[20.0, 30.0, 0.0], [-1.0, -1.0, -1.0]]])
    new = torch.tensor([[[20, 30, 1]]])
    with torch.inference_mode():
        a = model(image, prev, pts, new, 0.0)
        b = again(image, prev, pts, new, 0.0)
    for k in a:
        assert torch.equal(a[k], b[k])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nope.pth")


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "notes.pth"
    p.write_text("hello, this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(p)
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(CheckpointError, match="directory"):
        load_model(d)


def test_plain_tensor_dict_is_not_an_fcfi_checkpoint(tmp_path):
    p = tmp_path / "sd.pth"
    torch.save({"weight": torch.zeros(3)}, p)
    with pytest.raises(CheckpointError, match="not an FCFI checkpoint"):
        load_model(p)


def test_truncated_official_file(tmp_path, h18s_file):
    data = h18s_file.read_bytes()
    p = tmp_path / "trunc.pth"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(p)


def test_corrupt_our_format(tmp_path, h18s_file):
    weights = save_model(load_model(h18s_file, device="cpu"), tmp_path / "m")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(weights)
    weights.with_suffix(".json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(weights)


def test_our_format_needs_its_config(tmp_path, h18s_file):
    weights = save_model(load_model(h18s_file, device="cpu"), tmp_path / "m")
    weights.with_suffix(".json").unlink()
    with pytest.raises(FileNotFoundError, match="json"):
        load_model(weights)


def test_unknown_model_class(tmp_path, conformance_dir):
    cfg = official_config(conformance_dir, "h18s")
    cfg["class"] = "isegm.model.is_segformer_model.SegFormerModel"
    p = _official_file(tmp_path, conformance_dir, config=cfg, state=OrderedDict())
    with pytest.raises(CheckpointError, match="unknown model class.*SegFormer"):
        load_model(p)


def test_unsupported_param_value(tmp_path, conformance_dir):
    cfg = official_config(conformance_dir, "h18s")
    cfg["params"]["use_rgb_conv"]["value"] = True
    p = _official_file(tmp_path, conformance_dir, config=cfg, state=OrderedDict())
    with pytest.raises(CheckpointError, match="use_rgb_conv"):
        load_model(p)


def test_key_and_shape_mismatches_are_listed(tmp_path, conformance_dir):
    state = OrderedDict(w1_state_dict(official_keys(conformance_dir, "h18s")))
    del state["feature_extractor.cls_head.bias"]
    state["feature_extractor.extra.weight"] = torch.zeros(2)
    state["maps_transform.0.weight"] = torch.zeros(16, 2, 1, 1)
    p = _official_file(tmp_path, conformance_dir, state=state)
    with pytest.raises(CheckpointError) as info:
        load_model(p)
    msg = str(info.value)
    assert "1 missing: feature_extractor.cls_head.bias" in msg
    assert "1 unexpected: feature_extractor.extra.weight" in msg
    assert "maps_transform.0.weight: checkpoint (16, 2, 1, 1) vs model (16, 3, 1, 1)" in msg


class _Evil:
    """Unpickling this would create a file (the payload of a code-carrying pickle)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_pickle_with_code_is_refused_not_executed(tmp_path, conformance_dir):
    target = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "config": {"class": _Evil(target)}}, p)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_model(p)
    assert not target.exists(), "the pickle's code was executed"


def test_default_model_missing_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mio, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"fcfi-lite\.safetensors"):
        load_model()


def test_registered_name_and_default(tmp_path, monkeypatch, h18s_file):
    monkeypatch.setattr(mio, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(mio, "DEFAULT_MODEL", "tiny")
    save_model(load_model(h18s_file, device="cpu"), tmp_path / "tiny")
    assert mio.available_models() == ["tiny"]
    assert load_model("tiny").checkpoint_path.endswith("tiny.safetensors")
    model = load_model()
    assert not model.training
    assert next(model.parameters()).device == pick_device()


def test_auto_device_is_what_torch_sees_and_named_devices_are_checked():
    mps = torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else ("mps" if mps else "cpu")
    assert pick_device().type == expected
    assert pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA was chosen"):
            pick_device("cuda")
    if not mps:
        with pytest.raises(ValueError, match="MPS was chosen"):
            pick_device("mps")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")


def test_builtin_default_model_is_shipped_and_loads():
    path = mio.WEIGHTS_DIR / f"{mio.DEFAULT_MODEL}.safetensors"
    assert path.is_file(), f"the built-in weights are missing from the package: {path}"
    model = load_model(device="cpu")
    assert not model.training
