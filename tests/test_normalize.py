"""Image normalisation policies (inference/normalize.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fcfi.inference.normalize import intensity_range, to_model_rgb, validate_image


def test_percentile_scaling_and_grey_to_rgb():
    img = np.arange(10000, dtype=np.uint16).reshape(100, 100)
    out = to_model_rgb(img)
    assert out.shape == (100, 100, 3) and out.dtype == np.float32
    assert out.min() == 0 and out.max() == 1
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    lo, hi = intensity_range(img)
    assert lo == pytest.approx(np.percentile(img, 0.5)) and hi == pytest.approx(
        np.percentile(img, 99.8)
    )


@pytest.mark.parametrize(
    "shape, expect",
    [((5, 6, 1), "grey"), ((5, 6, 2), "two"), ((5, 6, 3), "rgb"), ((5, 6, 4), "rgba")],
)
def test_channels(shape, expect):
    img = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    out = to_model_rgb(img, "dtype")
    assert out.shape == (5, 6, 3)
    if expect == "grey":
        np.testing.assert_allclose(out[..., 1], img[..., 0] / 255, atol=1e-6)
    elif expect == "two":
        assert not out[..., 2].any()
    else:
        np.testing.assert_allclose(out, img[..., :3] / 255, atol=1e-6)


def test_policies_and_shared_range():
    img = np.array([[10, 20], [30, 50]], np.int32)
    np.testing.assert_allclose(to_model_rgb(img, "minmax")[..., 0], [[0, 0.25], [0.5, 1]])
    np.testing.assert_allclose(
        to_model_rgb(img, "auto", intensity=(0, 100))[..., 0], [[0.1, 0.2], [0.3, 0.5]], atol=1e-6
    )
    rgb = np.random.default_rng(1).random((4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_model_rgb(rgb, None), rgb)
    with pytest.raises(ValueError, match="normalize=None"):
        to_model_rgb(np.zeros((4, 4), np.uint8), None)
    with pytest.raises(ValueError, match="policy"):
        to_model_rgb(img, "nope")


@pytest.mark.parametrize(
    "img",
    [
        np.full((8, 8), 3.0),
        np.ones((1, 1), np.uint8),
        np.eye(4, dtype=bool),
        np.array([[-1e308, 0.0], [1.7e308, 5.0]]),
        np.array([[np.iinfo(np.int64).min, 0], [np.iinfo(np.int64).max, 1]]),
    ],
    ids=["constant", "1x1", "bool", "float64-extreme", "int64-extreme"],
)
@pytest.mark.parametrize("policy", ["auto", "minmax", "dtype"])
def test_odd_images_give_finite_output(img, policy):
    out = to_model_rgb(img, policy)
    assert out.shape == img.shape + (3,)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "img, match",
    [
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([[np.inf, 1.0]]), "NaN or infinite"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((2, 2, 2, 2)), "axes"),
        (np.zeros((3, 3, 5)), "channels"),
        (np.zeros((3, 3), complex), "real"),
        (np.zeros(3), "axes"),
    ],
)
def test_bad_images(img, match):
    with pytest.raises(ValueError, match=match):
        validate_image(img)
