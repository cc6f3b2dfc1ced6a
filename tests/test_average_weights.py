"""scripts/average_weights.py: the weights of several training chunks averaged, BatchNorm
re-estimated, written with a training record that scripts/package_weights.py accepts."""

from __future__ import annotations

import json

import torch

from _training_helpers import load_script, write_dataset
from napari_fcfi.model.lite import BUILTIN_WEIGHTS, FCFILite, config_path, load_lite, save_lite


def _script():
    return load_script("average_weights")


def _dataset(root):
    images, labels = write_dataset(root, n=3)
    return ["--images", str(images), "--labels", str(labels)]


def _chunk(tmp_path, name, samples_total, scale, record=True, samples=1000):
    """A run's float32 output: the built-in network changed, with a training record."""
    model = load_lite(BUILTIN_WEIGHTS)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(50.0)  # far from what the data give
    extra = {}
    if record:
        extra["training"] = {
            "steps": 10,
            "samples": samples,
            "samples_total": samples_total,
            "batch": 2,
            "crop": 64,
            "wall_time_s": 60.0 * scale,
            "init": "fcfi-lite",
            "max_robot_clicks": 1,
            "scale_mode": "object",
        }
    return save_lite(model, tmp_path / name / "fcfi-lite.safetensors", extra=extra), model


def test_chunks_are_averaged_and_batchnorm_reestimated(tmp_path):
    data = _dataset(tmp_path / "data")
    a, ma = _chunk(tmp_path, "a", 1000, 1.0)
    b, mb = _chunk(tmp_path, "b", 2000, 1.02)
    out = tmp_path / "avg" / "fcfi-lite.safetensors"
    args = [str(a), str(b), *data, "--out", str(out), "--bn-batches", "2", "--threads", "1"]
    assert _script().main(args) == 0

    avg = load_lite(out)
    names = [k for k, v in avg.state_dict().items() if v.is_floating_point() and "running" not in k]
    for k in names[:5] + names[-5:]:
        expect = (ma.state_dict()[k] + mb.state_dict()[k]) / 2
        assert torch.allclose(avg.state_dict()[k], expect, atol=1e-6), k
    variances = [m.running_var for m in avg.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert variances and all(not torch.allclose(v, torch.full_like(v, 50.0)) for v in variances)

    record = json.loads(config_path(out).read_text())["training"]
    assert record["samples_total"] == 2000  # b continued a: its samples include a's
    assert [r["samples_total"] for r in record["average_of"]] == [1000, 2000]
    assert record["bn_batches"] == 2
    assert record["wall_time_s"] >= 60.0 * 1.02


def test_bad_inputs_are_refused_and_nothing_is_written(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    a, _ = _chunk(tmp_path, "a", 1000, 1.0)
    b, _ = _chunk(tmp_path, "b", 2000, 1.0, record=False)
    out = tmp_path / "avg.safetensors"
    script = _script()

    assert script.main([str(a), *data, "--out", str(out)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert script.main([str(a), str(b), *data, "--out", str(out)]) == 2
    assert "no training record" in capsys.readouterr().err
    other = save_lite(FCFILite(half_res_refine=False), tmp_path / "other.safetensors")
    cfg = json.loads(config_path(other).read_text())
    cfg["training"] = {"samples_total": 5}
    config_path(other).write_text(json.dumps(cfg))
    assert script.main([str(a), str(other), *data, "--out", str(out)]) == 2
    assert "another architecture" in capsys.readouterr().err
    assert script.main([str(a), str(tmp_path / "none.safetensors"), *data, "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    missing = ["--images", str(tmp_path / "nope"), "--labels", str(tmp_path / "nope")]
    assert script.main([str(a), str(a), *missing, "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_samples_behind_counts_each_chunk_once():
    behind = _script().samples_behind

    def rec(total, samples):
        return {"samples_total": total, "samples": samples}

    chain = [rec(1000, 1000), rec(1500, 500), rec(2100, 600)]
    assert behind(chain, 2) == 2100  # successive chunks: the newest total counts them all
    siblings = [rec(1500, 500), rec(1600, 600)]  # both continued the 1000-sample weights
    assert behind(siblings, 1) == 1600 + 500
    parent_and_children = [rec(1000, 400), rec(1500, 500), rec(1600, 600)]
    assert behind(parent_and_children, 2) == 1600 + 500
    assert behind([rec(1000, 400), rec(1000, 400)], 0) == 1400  # same start, same size


def test_sibling_chunks_average_records_all_their_samples(tmp_path):
    data = _dataset(tmp_path / "data")
    a, _ = _chunk(tmp_path, "a", 1500, 1.0, samples=500)
    b, _ = _chunk(tmp_path, "b", 1500, 1.02, samples=500)
    out = tmp_path / "avg" / "fcfi-lite.safetensors"
    args = [str(a), str(b), *data, "--out", str(out), "--bn-batches", "1", "--threads", "1"]
    assert _script().main(args) == 0
    record = json.loads(config_path(out).read_text())["training"]
    assert record["samples_total"] == 2000
    assert [r["samples_total"] for r in record["average_of"]] == [1500, 1500]
    assert record["wall_time_s"] >= 60.0 * (1.0 + 1.02)  # both branches' training time
