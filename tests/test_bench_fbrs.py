"""The f-BRS benchmark's wrapper (a small untrained FCFI-Lite)."""

import numpy as np
import pytest
import torch

from _training_helpers import BENCHMARKS, load_script
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.model.lite import FCFILite


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_fbrs", BENCHMARKS)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = FCFILite().eval()
    with torch.no_grad():  # an untrained head answers about 0.5 everywhere: give it a say
        net.head[-1].weight.mul_(50.0)
    return net


def _inputs(flipped: bool):
    """A 64 px input with one positive and one negative click; with ``flipped`` a second,
    horizontally flipped pass, as the predictor batches them."""
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 64, 64, generator=g)
    prev = torch.zeros(1, 1, 64, 64)
    pts = torch.tensor([[[20.0, 30.0, 0.0], [40.0, 12.0, 1.0]]], dtype=torch.float64)
    if flipped:
        image = torch.cat([image, image.flip(-1)])
        prev = torch.cat([prev, prev])
        mirrored = pts.clone()
        mirrored[..., 1] = 63 - mirrored[..., 1]
        pts = torch.cat([pts, mirrored])
    return image, prev, pts


def _click_probs(logits, pts):
    """Probability of the passes' mean logit at each click row."""
    p = pts.long()
    vals = torch.stack([logits[b, 0, p[b, :, 0], p[b, :, 1]] for b in range(len(p))])
    return torch.sigmoid(vals.mean(0))


def test_fbrs_refines_only_answers_that_contradict_their_clicks(bench, net):
    image, prev, pts = _inputs(flipped=True)
    with torch.inference_mode():
        plain = net(image, prev, pts)["instances"]
    before = _click_probs(plain, pts)
    # the positive click (row 0) only, read just below its probability: it agrees already,
    # nothing is optimised and the answer is the network's
    pos_only = pts.clone()
    pos_only[:, 1] = -1.0
    with torch.inference_mode():
        plain_pos = net(image, prev, pos_only)["instances"]
    p_pos = float(_click_probs(plain_pos, pos_only)[0])
    agreeing = bench.FeatureBRS(net, threshold=p_pos - 0.02, evaluations=10)
    with torch.inference_mode():
        out = agreeing(image, prev, pos_only)
    assert agreeing.stats == {**agreeing.stats, "answers": 1, "refined": 0, "evaluations": 0}
    assert torch.equal(out["instances"], plain_pos)
    # both clicks, read at a threshold above the positive click's probability: optimised
    strict_t = min(0.99, float(before[0]) + 0.2)
    strict = bench.FeatureBRS(net, threshold=strict_t, evaluations=15)
    with torch.inference_mode():
        out = strict(image, prev, pts)
    assert strict.stats["refined"] == 1 and strict.stats["evaluations"] >= 2
    after = _click_probs(out["instances"], pts)

    def loss(p):  # the clicks' term of the objective: positive towards 1, negative towards 0
        return float((1 - p[0]) ** 2 + p[1] ** 2)

    assert loss(after) < loss(before) - 0.01
    assert set(out) == {"instances", "feedback_ffcm", "feedback_cffm"}
    assert out["instances"].shape == plain.shape
    assert torch.isfinite(out["instances"]).all()


def test_the_predictor_runs_through_the_wrapper(bench, net):
    image = np.random.default_rng(0).random((80, 90, 3)).astype(np.float32)
    wrapper = bench.FeatureBRS(net, threshold=0.99, evaluations=3)
    pred = Predictor(wrapper, flip_axes="xy", normalize=None)
    first = pred.predict(image, [(40, 45, True)])
    second = pred.predict(image, [(40, 45, True), (10, 10, False)], first)
    assert first.shape == second.shape == (80, 90)
    assert np.isfinite(second).all() and 0 <= second.min() <= second.max() <= 1
    assert wrapper.stats["answers"] >= 2 and wrapper.stats["refined"] >= 1
