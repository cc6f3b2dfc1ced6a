"""End-to-end tests of ``napari-fcfi refine`` (napari_fcfi.stack.cli)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from _refine_helpers import blobs_image, disk_labels, stub_predictor
from napari_fcfi.cli import main
from napari_fcfi.model.stub import StubNet
from napari_fcfi.stack import cli as stack_cli
from napari_fcfi.stack import refine_labels


@pytest.fixture
def stack(tmp_path):
    labs = np.stack(
        [
            disk_labels(centers=((16, 16 + i), (18, 46), (44, 30 - i)), ids=[2, 5, 300 + i])
            for i in range(5)
        ]
    )
    imgs = np.stack([blobs_image(x, seed=i) for i, x in enumerate(labs)])
    tifffile.imwrite(tmp_path / "image.tif", imgs)
    tifffile.imwrite(tmp_path / "labels.tif", labs)
    zarr.create_array(tmp_path / "labels.zarr", data=labs, chunks=(1, 64, 64))
    zarr.create_array(tmp_path / "image.zarr", data=imgs, chunks=(2, 32, 32))
    return tmp_path, imgs, labs


@pytest.fixture
def stub_model(monkeypatch):
    """``--model stub`` -> StubNet, in this process (the synchronous scheduler)."""

    def load(model):
        if model != "stub":
            raise ValueError(f"--model {model}: unknown model")
        return StubNet()

    monkeypatch.setattr(stack_cli, "_load_model", load)
    monkeypatch.setattr(stack_cli, "_PREDICTORS", {})


def _refine(*args):
    args = [str(a) for a in args]
    model = [] if "--model" in args else ["--model", "stub"]
    return main(["refine", *args, "--scheduler", "synchronous", *model, "--quiet"])


def test_tiff_to_tiff_matches_function(stack, stub_model):
    tmp, imgs, labs = stack
    out = tmp / "out.tif"
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out, "--report", tmp / "r.csv") == 0
    got = tifffile.imread(out)
    ref, report = refine_labels(imgs, labs, stub_predictor())
    assert got.shape == labs.shape and got.dtype == labs.dtype
    np.testing.assert_array_equal(got, ref)
    assert not (tmp / "out.tif.partial.zarr").exists()
    rows = list(csv.DictReader(open(tmp / "r.csv")))
    assert len(rows) == len(report) == 15
    assert {(r["slice"], int(r["label"])) for r in rows} == {
        (str(z), i) for z in range(5) for i in (2, 5, 300 + z)
    }


def test_zarr_io_and_slices(stack, stub_model):
    tmp, imgs, labs = stack
    out = tmp / "out.zarr"
    assert (
        _refine(
            tmp / "image.zarr",
            tmp / "labels.zarr",
            "-o",
            out,
            "--slices",
            "1:3",
            "--report",
            tmp / "r.csv",
        )
        == 0
    )
    arr = zarr.open_array(out, mode="r")
    got = arr[:]
    ref, _ = refine_labels(imgs, labs, stub_predictor(), slices=slice(1, 3))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got[[0, 3, 4]], labs[[0, 3, 4]])  # copied unchanged
    assert arr.attrs["napari_fcfi_refine"]["complete"] is True
    rows = list(csv.DictReader(open(tmp / "r.csv")))
    assert {r["slice"] for r in rows} == {"1", "2"}

    # a second run on the finished output refines the remaining slices only
    calls = []
    real = stack_cli.slice_task
    stack_cli.slice_task = lambda job, i, w, threads=1: calls.append((i, w)) or real(job, i, w)
    try:
        assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    finally:
        stack_cli.slice_task = real
    assert sorted(calls) == [((0,), True), ((3,), True), ((4,), True)]
    np.testing.assert_array_equal(
        zarr.open_array(out)[:], refine_labels(imgs, labs, stub_predictor())[0]
    )


def test_resume_after_interrupted_run(stack, stub_model, monkeypatch):
    tmp, imgs, labs = stack
    out = tmp / "out.tif"
    real = stack_cli.slice_task
    done = []

    def dying(job, index, wanted, threads=1):
        if len(done) == 2:
            raise KeyboardInterrupt  # the run is killed after two slices
        done.append(index)
        return real(job, index, wanted)

    monkeypatch.setattr(stack_cli, "slice_task", dying)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 130
    assert not out.exists() and (tmp / "out.tif.partial.zarr").exists()

    again = []
    monkeypatch.setattr(
        stack_cli, "slice_task", lambda j, i, w, threads=1: again.append(i) or real(j, i, w)
    )
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    assert sorted(again) == [(2,), (3,), (4,)]  # finished slices were skipped
    np.testing.assert_array_equal(
        tifffile.imread(out), refine_labels(imgs, labs, stub_predictor())[0]
    )
    assert not (tmp / "out.tif.partial.zarr").exists()


def _bad_inputs(tmp, imgs, labs):
    tifffile.imwrite(tmp / "small.tif", labs[:, :32])
    tifffile.imwrite(tmp / "float.tif", labs.astype(np.float32))
    (tmp / "broken.tif").write_bytes(b"II*\x00 this is not a tiff")
    return {
        "shape": (["image.tif", "small.tif"], "does not match labels shape"),
        "float": (["image.tif", "float.tif"], "integer"),
        "unreadable": (["broken.tif", "labels.tif"], "cannot read"),
        "missing": (["nope.tif", "labels.tif"], "no such file"),
        "slices": (["image.tif", "labels.tif", "--slices", "7:9"], "selects no slice"),
        "format": (["image.png", "labels.tif"], "unsupported format"),
        "model": (["image.tif", "labels.tif", "--model", "nonsense"], "unknown model"),
        "workers": (["image.tif", "labels.tif", "--workers", "0"], "positive"),
    }


@pytest.mark.parametrize(
    "case", ["shape", "float", "unreadable", "missing", "slices", "format", "model", "workers"]
)
@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_bad_input_one_line_error_nothing_written(stack, stub_model, capsys, case, suffix):
    tmp, imgs, labs = stack
    (tmp / "image.png").write_bytes(b"\x89PNG")
    args, message = _bad_inputs(tmp, imgs, labs)[case]
    out = tmp / f"out{suffix}"
    before = set(tmp.iterdir())
    rc = _refine(*[tmp / a if not a.startswith("-") and "." in a else a for a in args], "-o", out)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("napari-fcfi refine: error:") and "\n" not in err
    assert message in err
    assert set(tmp.iterdir()) == before  # nothing written


def test_console_script_on_local_cluster(stack):
    """The real thing: the console script, a 2-process LocalCluster, a checkpoint path."""
    from napari_fcfi import load_model
    from napari_fcfi.model.lite import FCFILite, save_lite
    from napari_fcfi.stack.refine import default_predictor

    tmp, imgs, labs = stack
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    save_lite(FCFILite().eval(), tmp / "lite.safetensors")  # random weights: plumbing only
    exe = Path(sys.executable).with_name("napari-fcfi")
    cmd = [
        str(exe),
        "refine",
        str(tmp / "image.tif"),
        str(tmp / "labels.tif"),
        "-o",
        str(tmp / "out.zarr"),
        "--model",
        str(tmp / "lite.safetensors"),
        "--workers",
        "2",
        "--slices",
        "1:4",
        "--report",
        str(tmp / "r.csv"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "refine: 100%" in proc.stderr  # the progress bar
    got = zarr.open_array(tmp / "out.zarr")[:]
    ref, report = refine_labels(
        imgs, labs, default_predictor(load_model(tmp / "lite.safetensors")), slices=slice(1, 4)
    )
    # other processes, other thread counts: allow a few pixels of floating-point noise
    assert (got != ref).mean() < 1e-3
    np.testing.assert_array_equal(got[[0, 4]], labs[[0, 4]])
    assert len(list(csv.DictReader(open(tmp / "r.csv")))) == len(report) == 9


def test_help_is_light():
    code = (
        "import sys; from napari_fcfi.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'napari', 'distributed', 'zarr') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_failing_slice_reports_and_keeps_partial(stack, stub_model, monkeypatch, capsys):
    tmp, imgs, labs = stack
    real = stack_cli.slice_task

    def flaky(job, index, wanted, threads=1):
        if index == (2,):
            raise RuntimeError("CUDA out of memory\nlong traceback text")
        return real(job, index, wanted)

    monkeypatch.setattr(stack_cli, "slice_task", flaky)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "out.zarr") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "RuntimeError: CUDA out of memory" in err and "resume" in err
    assert (tmp / "out.zarr").exists() and not zarr.open_array(tmp / "out.zarr").attrs[
        "napari_fcfi_refine"
    ].get("complete")
    monkeypatch.setattr(stack_cli, "slice_task", real)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "out.zarr") == 0
    np.testing.assert_array_equal(
        zarr.open_array(tmp / "out.zarr")[:], refine_labels(imgs, labs, stub_predictor())[0]
    )


def test_cli_defaults_match_the_function():
    import inspect

    sig = inspect.signature(refine_labels).parameters
    assert {k: sig[k].default for k in stack_cli.DEFAULTS} == stack_cli.DEFAULTS


def test_2d_rgb_and_4d_stacks(tmp_path, stub_model):
    lab = disk_labels()
    img = blobs_image(lab)
    tifffile.imwrite(tmp_path / "rgb.tif", np.repeat(img[..., None], 3, axis=-1))
    tifffile.imwrite(tmp_path / "lab.tif", lab)
    assert _refine(tmp_path / "rgb.tif", tmp_path / "lab.tif", "-o", tmp_path / "o.tif") == 0
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "o.tif"), refine_labels(img, lab, stub_predictor())[0]
    )
    lab4 = np.stack([np.stack([lab, lab[::-1]])] * 3)  # (T, Z, Y, X)
    img4 = np.stack([np.stack([img, img[::-1]])] * 3)
    tifffile.imwrite(tmp_path / "i4.tif", img4)
    zarr.create_array(tmp_path / "l4.zarr", data=lab4, chunks=(1, 1, 64, 64))
    out = tmp_path / "o4.zarr"
    assert _refine(tmp_path / "i4.tif", tmp_path / "l4.zarr", "-o", out, "--slices", "1:2") == 0
    ref, report = refine_labels(img4, lab4, stub_predictor(), slices=[1])
    np.testing.assert_array_equal(zarr.open_array(out)[:], ref)
    assert {r.slice for r in report} == {(1, 0), (1, 1)}


def test_workers_do_not_get_dask_malloc_trim_threshold():
    """dask's MALLOC_TRIM_THRESHOLD_=64k made the network 2.2x slower in workers."""
    env = stack_cli._worker_environ()
    assert env["MALLOC_TRIM_THRESHOLD_"] is None
    assert str(env["OMP_NUM_THREADS"]) == "1"  # the rest of dask's worker environment stays
