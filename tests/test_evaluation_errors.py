"""``napari-fcfi evaluate``: expected errors are one line and exit status 2."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_fcfi.cli import main


def _pair(root, image, labels, name="a.tif"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "images" / name, image)
    tifffile.imwrite(root / "labels" / name, labels)
    return ["--images", str(root / "images"), "--labels", str(root / "labels")]


def _image(shape=(64, 80)):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, shape).astype(np.uint8)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("napari-fcfi evaluate: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


def test_no_instance_is_a_clear_error(tmp_path, capsys):
    folders = _pair(tmp_path, _image(), np.zeros((64, 80), np.uint16))
    out = tmp_path / "res.json"
    rc = main(["evaluate", *folders, "--method", "watershed", "--json", str(out)])
    assert rc == 2 and not out.exists()
    _one_line_error(capsys, "no instance")


def test_zero_max_instances_is_refused(tmp_path, capsys):
    lab = np.zeros((64, 80), np.uint16)
    lab[10:30, 10:30] = 1
    folders = _pair(tmp_path, _image(), lab)
    assert main(["evaluate", *folders, "--method", "watershed", "--max-instances", "0"]) == 2
    _one_line_error(capsys, "--max-instances")


@pytest.mark.parametrize("label_shape", [(40, 80), (64, 100)])
def test_label_of_another_size_is_a_clear_error(tmp_path, capsys, label_shape):
    lab = np.zeros(label_shape, np.uint16)
    lab[10:30, 10:30] = 1
    folders = _pair(tmp_path, _image(), lab)
    out = tmp_path / "res.json"
    rc = main(["evaluate", *folders, "--method", "watershed", "--json", str(out)])
    assert rc == 2 and not out.exists()
    _one_line_error(capsys, "a.tif", "size")


def test_rgb_png_image_with_matching_labels_passes_the_size_check(tmp_path):
    from skimage import io as skio

    from napari_fcfi.evaluation.cli import list_instances, list_pairs

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    img = np.stack([_image()] * 3, -1)
    skio.imsave(tmp_path / "images" / "b.png", img, check_contrast=False)
    lab = np.zeros((64, 80), np.uint8)
    lab[5:20, 5:25] = 1
    skio.imsave(tmp_path / "labels" / "b.png", lab, check_contrast=False)
    pairs = list_pairs(tmp_path / "images", tmp_path / "labels")
    assert list_instances(pairs) == [(0, 1)]


def test_missing_model_file_is_a_clear_error(tmp_path, capsys):
    lab = np.zeros((64, 80), np.uint16)
    lab[10:30, 10:30] = 1
    folders = _pair(tmp_path, _image(), lab)
    rc = main(["evaluate", *folders, "--model", str(tmp_path / "nope.safetensors")])
    assert rc == 2
    _one_line_error(capsys, "not found")
