"""Edge-guided corrections: the guided filter of the answers with feedback, its setting,
and where it reaches (presets, the evaluation CLI, the editor's predictor)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_fcfi.annotation.predictors import PredictorCache, PredictorSettings
from napari_fcfi.inference.guided import guided_filter
from napari_fcfi.inference.predictor import Predictor
from stubnet import StubNet

SHAPE = (64, 80)


def _edge_image():
    """A bright disk (radius 12) on a dark background, as RGB in [0, 1]."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    disk = (yy - 32) ** 2 + (xx - 40) ** 2 <= 12**2
    return np.repeat(np.where(disk, 0.9, 0.1)[..., None], 3, axis=2).astype(np.float32), disk


def test_the_filter_follows_the_guides_edges_and_smooths_flat_parts():
    g = torch.Generator().manual_seed(0)
    guide = torch.rand(1, 1, 32, 32, generator=g)
    flat = torch.full((1, 1, 32, 32), 0.3)
    torch.testing.assert_close(guided_filter(flat, guide, 2, 1e-2), flat)
    edge = torch.zeros(1, 1, 8, 32)
    edge[..., 16:] = 1.0
    torch.testing.assert_close(guided_filter(edge, edge, 2, 1e-4), edge, atol=1e-2, rtol=0)
    # an answer whose boundary lies two pixels off the image's edge gains a step at the edge
    late = torch.zeros(1, 1, 8, 32)
    late[..., 18:] = 1.0
    q = guided_filter(late, edge, 2, 1e-2)[0, 0, 4]
    assert float(q[16] - q[15]) > 0.2 and float(q[15]) < 0.01

    # an image without edges: the answer's box mean of box means
    def box(x):
        return torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)

    torch.testing.assert_close(
        guided_filter(late, torch.full_like(late, 0.5), 2, 1e-2), box(box(late))
    )
    assert guided_filter(late, edge, 0, 1e-2) is late  # radius 0: no filter


def _one_answer(pred: Predictor, image, prev=None, clicks=((32, 40, True),)):
    pred.reset_state()
    return pred.predict(image, list(clicks), prev)


def test_only_the_answers_with_feedback_are_filtered():
    image, disk = _edge_image()
    plain = Predictor(StubNet(), device="cpu", normalize=None, flip=False)
    guided = Predictor(
        StubNet(),
        device="cpu",
        normalize=None,
        flip=False,
        guided_filter_radius=2,
        guided_filter_eps=1e-3,
    )
    # the first click (no feedback): the same answer
    np.testing.assert_array_equal(_one_answer(plain, image), _one_answer(guided, image))
    # with a feedback mask a few pixels too large, the filtered answer moves to the edge
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    prev = ((yy - 32) ** 2 + (xx - 40) ** 2 <= 14**2).astype(np.float32)
    a = _one_answer(plain, image, prev) > 0.5
    b = _one_answer(guided, image, prev) > 0.5
    assert not np.array_equal(a, b)

    def iou(m):
        return (m & disk).sum() / (m | disk).sum()

    assert iou(b) > iou(a)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "two", 33, float("nan")])
def test_the_radius_is_a_whole_number_of_pixels(bad):
    with pytest.raises(ValueError, match="guided_filter_radius"):
        Predictor(StubNet(), device="cpu", guided_filter_radius=bad)


@pytest.mark.parametrize("bad", [0, -0.1, "x", float("inf")])
def test_eps_is_positive(bad):
    with pytest.raises(ValueError, match="guided_filter_eps"):
        Predictor(StubNet(), device="cpu", guided_filter_eps=bad)


def test_presets_carry_the_filter_and_the_caller_overrides_it():
    net = StubNet()
    assert Predictor(net, device="cpu").guided_filter_radius == 0  # official behaviour
    net.inference_presets = {"nuclei": {"guided_filter_radius": 2, "guided_filter_eps": 0.02}}
    pred = Predictor(net, device="cpu", preset="nuclei")
    assert (pred.guided_filter_radius, pred.guided_filter_eps) == (2, 0.02)
    assert (
        Predictor(net, device="cpu", preset="nuclei", guided_filter_radius=0).guided_filter_radius
        == 0
    )
    net.inference_presets = {"nuclei": {"guided_filter_radius": -2}}
    with pytest.raises(ValueError, match="guided_filter_radius.*preset 'nuclei'"):
        Predictor(net, device="cpu", preset="nuclei")


def test_the_editor_predictor_takes_the_kind_of_objects_preset():
    made = []

    def factory(model, **kwargs):
        made.append(kwargs)
        return Predictor(model, **kwargs)

    net = StubNet()
    net.inference_presets = {"nuclei": {"guided_filter_radius": 3}}
    cache = PredictorCache(model=net, predictor_factory=factory)
    settings = PredictorSettings(source="injected", device="cpu")
    assert cache.get(settings, 0.49).guided_filter_radius == 0
    assert "preset" not in made[-1]
    nuclei = cache.get(PredictorSettings(source="injected", device="cpu", objects="nuclei"), 0.49)
    assert made[-1]["preset"] == "nuclei" and nuclei.guided_filter_radius == 3
    # a kind of object the model has no preset for: its defaults
    other = cache.get(PredictorSettings(source="injected", device="cpu", objects="cells"), 0.49)
    assert "preset" not in made[-1] and other.guided_filter_radius == 0


def test_evaluate_takes_and_records_the_filter(tmp_path):
    from tifffile import imwrite

    from napari_fcfi.cli import main

    image, disk = _edge_image()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    imwrite(tmp_path / "images" / "a.tif", (image * 255).astype(np.uint8))
    imwrite(tmp_path / "labels" / "a.tif", disk.astype(np.uint16))
    out = tmp_path / "r.json"
    args = [
        "evaluate",
        "--images",
        str(tmp_path / "images"),
        "--labels",
        str(tmp_path / "labels"),
        "--max-clicks",
        "3",
        "--json",
        str(out),
    ]
    assert main([*args, "--guided-radius", "2", "--guided-eps", "0.05"]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert (settings["guided_filter_radius"], settings["guided_filter_eps"]) == (2, 0.05)
    assert main([*args, "--guided-radius", "-1"]) == 2


def test_the_builtin_nuclei_preset_guides_its_corrections():
    """The built-in model's nuclei preset turns the filter on (chosen on the DSB2018
    validation split); its defaults and the model of cells leave it off."""
    from napari_fcfi.model.catalogue import builtin_config
    from napari_fcfi.model.io import load_model

    nuclei = builtin_config()["presets"]["nuclei"]
    assert nuclei["guided_filter_radius"] == 2 and nuclei["guided_filter_eps"] == 0.01
    model = load_model(None, device="cpu")
    assert Predictor(model, device="cpu", preset="nuclei").guided_filter_radius == 2
    assert Predictor(model, device="cpu").guided_filter_radius == 0
    cells = load_model("fcfi-lite-cells", device="cpu")
    assert Predictor(cells, device="cpu").guided_filter_radius == 0
    # the widget's "Nuclei" kind of object gets it through the editor's predictor cache
    cache = PredictorCache()
    pred = cache.get(PredictorSettings(device="cpu", objects="nuclei"), 0.49, 0.35)
    assert pred.guided_filter_radius == 2 and pred.threshold_for(False) == 0.35
