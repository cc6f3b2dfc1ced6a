"""End-to-end tests of ``napari-fcfi refine`` (napari_fcfi.stack.cli)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage as ndi

from _refine_helpers import BrightNet, blobs_image, disk_labels, stub_predictor
from napari_fcfi import cores
from napari_fcfi.cli import main
from napari_fcfi.stack import batch as stack_batch
from napari_fcfi.stack import cli as stack_cli
from napari_fcfi.stack import refine_labels, worker
from napari_fcfi.stack.refine import default_predictor
from stubnet import StubNet


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

    monkeypatch.setattr(worker, "load_network", load)


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
    real = stack_batch.slice_task

    def counting(job, i, w, threads=1, worker=None):
        calls.append((i, w))
        return real(job, i, w, threads, worker=worker)

    stack_batch.slice_task = counting
    try:
        assert _refine(tmp / "image.zarr", tmp / "labels.zarr", "-o", out) == 0
    finally:
        stack_batch.slice_task = real
    assert sorted(calls) == [((0,), True), ((3,), True), ((4,), True)]
    np.testing.assert_array_equal(
        zarr.open_array(out)[:], refine_labels(imgs, labs, stub_predictor())[0]
    )


def test_resume_after_interrupted_run(stack, stub_model, monkeypatch):
    tmp, imgs, labs = stack
    out = tmp / "out.tif"
    real = stack_batch.slice_task
    done = []

    def dying(job, index, wanted, threads=1, worker=None):
        if len(done) == 2:
            raise KeyboardInterrupt  # the run is killed after two slices
        done.append(index)
        return real(job, index, wanted, threads, worker=worker)

    monkeypatch.setattr(stack_batch, "slice_task", dying)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 130
    assert not out.exists() and (tmp / "out.tif.partial.zarr").exists()

    again = []

    def counting(job, index, wanted, threads=1, worker=None):
        again.append(index)
        return real(job, index, wanted, threads, worker=worker)

    monkeypatch.setattr(stack_batch, "slice_task", counting)
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
    negative = labs.astype(np.int32)
    negative[3, 0, 0] = -3  # found up front, not after slices 0-2 were written
    tifffile.imwrite(tmp / "negative.tif", negative)
    nan = imgs.astype(np.float32)
    nan[2, 40, 40] = np.nan
    tifffile.imwrite(tmp / "nan.tif", nan)
    data = (tmp / "image.tif").read_bytes()
    (tmp / "cut.tif").write_bytes(data[: len(data) - 5000])  # the last slices are missing
    return {
        "negative": (["image.tif", "negative.tif"], "negative label ids"),
        "nan": (["nan.tif", "labels.tif"], "NaN"),
        "truncated": (["cut.tif", "labels.tif"], "truncated"),
        "margin_nan": (["image.tif", "labels.tif", "--margin", "nan"], "--margin nan"),
        "margin_range": (["image.tif", "labels.tif", "--margin", "2"], "from 0.0 to 1.0"),
        "threads": (["image.tif", "labels.tif", "--threads", "0"], "--threads 0"),
        "timeout": (["image.tif", "labels.tif", "--timeout", "0"], "--timeout 0"),
        "shape": (["image.tif", "small.tif"], "does not match labels shape"),
        "float": (["image.tif", "float.tif"], "integer"),
        "unreadable": (["broken.tif", "labels.tif"], "cannot read"),
        "missing": (["nope.tif", "labels.tif"], "no such file"),
        "slices": (["image.tif", "labels.tif", "--slices", "7:9"], "selects no slice"),
        "format": (["image.png", "labels.tif"], "unsupported format"),
        "model": (["image.tif", "labels.tif", "--model", "nonsense"], "unknown model"),
        "workers": (["image.tif", "labels.tif", "--workers", "0"], "positive"),
    }


BAD_INPUTS = [
    "shape",
    "float",
    "unreadable",
    "missing",
    "slices",
    "format",
    "model",
    "workers",
    "negative",
    "nan",
    "truncated",
    "margin_nan",
    "margin_range",
    "threads",
    "timeout",
]


@pytest.mark.parametrize("case", BAD_INPUTS)
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
    assert "resume" not in err
    assert set(tmp.iterdir()) == before  # nothing written


def test_console_script_on_local_cluster(stack):
    """The real thing: the console script, a 2-process LocalCluster, a checkpoint path."""
    from napari_fcfi import load_model
    from napari_fcfi.model.lite import FCFILite, save_lite
    from napari_fcfi.stack.refine import default_predictor

    tmp, imgs, labs = stack
    import torch

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
    real = stack_batch.slice_task

    def flaky(job, index, wanted, threads=1, worker=None):
        if index == (2,):
            raise RuntimeError("CUDA out of memory\nlong traceback text")
        return real(job, index, wanted, threads, worker=worker)

    monkeypatch.setattr(stack_batch, "slice_task", flaky)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "out.zarr") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "RuntimeError: CUDA out of memory" in err and "resume" in err
    assert (tmp / "out.zarr").exists() and not zarr.open_array(tmp / "out.zarr").attrs[
        "napari_fcfi_refine"
    ].get("complete")
    monkeypatch.setattr(stack_batch, "slice_task", real)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "out.zarr") == 0
    np.testing.assert_array_equal(
        zarr.open_array(tmp / "out.zarr")[:], refine_labels(imgs, labs, stub_predictor())[0]
    )


def test_cli_defaults_are_the_refine_options():
    import argparse

    from napari_fcfi.stack.options import RefineOptions

    parser = argparse.ArgumentParser()
    stack_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["refine", "img.tif", "lab.tif", "-o", "out.zarr"])
    defaults = RefineOptions()
    for name in ("min_size", "extra_clicks", "margin"):
        assert getattr(args, name) == getattr(defaults, name), name


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
    from napari_fcfi.stack.cluster import worker_environ

    env = worker_environ()
    assert env["MALLOC_TRIM_THRESHOLD_"] is None
    assert str(env["OMP_NUM_THREADS"]) == "1"  # the rest of dask's worker environment stays


# ------------------------------------------------------------ resume is keyed by content


def _replace_tiff(path, data, keep_mtime=False):
    """Rewrite ``path`` with ``data`` as a new file (a new inode, as editors and copies do)."""
    st = path.stat()
    tmp = path.with_name("." + path.name + ".new")
    tifffile.imwrite(tmp, data)
    os.replace(tmp, path)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_rerun_with_edited_labels_is_refused_and_overwrite_recomputes(stack, stub_model, capsys):
    tmp, imgs, labs = stack
    out = tmp / "out.zarr"
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    first = zarr.open_array(out)[:]
    capsys.readouterr()

    edited = labs.copy()
    edited[2][edited[2] == 5] = 0  # an object deleted by hand: same size, same dtype
    # even with the modification time put back, the content hash tells
    _replace_tiff(tmp / "labels.tif", edited, keep_mtime=True)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "labels" in err and "content" in err and "--overwrite" in err
    np.testing.assert_array_equal(zarr.open_array(out)[:], first)  # left as it was

    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out, "--overwrite") == 0
    np.testing.assert_array_equal(
        zarr.open_array(out)[:], refine_labels(imgs, edited, stub_predictor())[0]
    )
    assert not (zarr.open_array(out)[2] == 5).any()


def test_rerun_with_other_options_or_model_is_refused(stack, stub_model, monkeypatch, capsys):
    tmp, imgs, labs = stack
    out = tmp / "out.zarr"
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    capsys.readouterr()
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out, "--margin", "0.2") == 2
    err = capsys.readouterr().err
    assert "margin: 0.35 then, 0.2 now" in err and "--overwrite" in err

    def load(model):  # another model, same kind of network
        return BrightNet() if model == "bright" else StubNet()

    monkeypatch.setattr(worker, "load_network", load)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out, "--model", "bright") == 2
    assert "model bright: weights differ" in capsys.readouterr().err
    # the same command again is a resume of a finished run: nothing is recomputed
    calls = []
    real = stack_batch.slice_task
    monkeypatch.setattr(stack_batch, "slice_task", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    assert calls == []


def test_partial_store_from_other_inputs_is_never_mixed_in(stack, stub_model, monkeypatch, capsys):
    tmp, imgs, labs = stack
    out = tmp / "out.tif"
    real = stack_batch.slice_task
    done = []

    def dying(job, index, wanted, threads=1, worker=None):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(index)
        return real(job, index, wanted, threads, worker=worker)

    monkeypatch.setattr(stack_batch, "slice_task", dying)
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 130
    partial = tmp / "out.tif.partial.zarr"
    assert partial.exists()
    monkeypatch.setattr(stack_batch, "slice_task", real)

    other = labs[::-1].copy()  # other labels, same shape and dtype
    tifffile.imwrite(tmp / "other.tif", other)
    capsys.readouterr()
    assert _refine(tmp / "image.tif", tmp / "other.tif", "-o", out) == 2
    err = capsys.readouterr().err
    assert str(partial) in err and "labels" in err and "--overwrite" in err
    assert not out.exists() and partial.exists()

    assert _refine(tmp / "image.tif", tmp / "other.tif", "-o", out, "--overwrite") == 0
    np.testing.assert_array_equal(
        tifffile.imread(out), refine_labels(imgs, other, stub_predictor())[0]
    )
    assert not partial.exists()


def test_bad_or_missing_records_are_recomputed(stack, stub_model, monkeypatch):
    """A corrupt record used to fail every re-run; a record whose chunk is gone gave an
    all-zero slice with exit 0."""
    tmp, imgs, labs = stack
    out = tmp / "out.zarr"
    assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    ref = zarr.open_array(out)[:]
    records = out / ".napari-fcfi-refine"
    (records / "1.json").write_text('{"slice": [1], "refined": tr')  # cut short
    (records / "4.json").write_text('{"slice": [0], "refined": true, "objects": []}')
    chunk = out / "c" / "3"
    assert chunk.exists()
    shutil.rmtree(chunk)  # the chunk is lost, its record stays
    assert (zarr.open_array(out)[3] == 0).all()

    calls = []
    real = stack_batch.slice_task

    def counting(job, index, wanted, threads=1, worker=None):
        calls.append(index)
        return real(job, index, wanted, threads, worker=worker)

    monkeypatch.setattr(stack_batch, "slice_task", counting)
    for _ in range(2):  # the second run finds everything in order: no loop
        assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", out) == 0
    assert sorted(calls) == [(1,), (3,), (4,)]
    np.testing.assert_array_equal(zarr.open_array(out)[:], ref)


# ---------------------------------------------------- worker caches are keyed by content


def test_same_paths_new_content_are_never_served_stale(stack, monkeypatch):
    """Two runs in one process (as on a long-lived cluster) with the labels and the model
    replaced at the same paths in between: the second run sees the new files."""
    tmp, imgs, labs = stack
    model = tmp / "model.json"

    def load(source):  # a "checkpoint" whose content picks the network
        net = BrightNet() if Path(source).read_text() == "bright" else StubNet()
        net.checkpoint_path = str(source)
        return net

    monkeypatch.setattr(worker, "load_network", load)
    model.write_text("stub")
    assert (
        _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "a.zarr", "--model", model) == 0
    )

    eroded = ndi.grey_erosion(labs, size=(1, 5, 5))  # other labels at the same path
    _replace_tiff(tmp / "labels.tif", eroded)
    model.write_text("bright")  # other weights at the same path
    assert (
        _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "b.zarr", "--model", model) == 0
    )
    expected = refine_labels(imgs, eroded, default_predictor(BrightNet()))[0]
    np.testing.assert_array_equal(zarr.open_array(tmp / "b.zarr")[:], expected)
    assert not np.array_equal(expected, refine_labels(imgs, eroded, stub_predictor())[0])


def test_slice_worker_caches_are_keyed_by_content(stack, monkeypatch):
    from napari_fcfi.stack.fingerprint import model_fingerprint
    from napari_fcfi.stack.io import source_stats

    tmp, imgs, labs = stack
    model = tmp / "model.json"

    def load(source):
        net = BrightNet() if Path(source).read_text() == "bright" else StubNet()
        net.checkpoint_path = str(source)
        return net

    monkeypatch.setattr(worker, "load_network", load)
    import torch

    n = torch.get_num_threads()  # the predictor sets it for its process
    sw = worker.SliceWorker()
    model.write_text("stub")
    old = model_fingerprint(str(model), load(model))
    with sw.predictor(str(model), old, n) as stub:
        pass
    with sw.predictor(str(model), old, n) as again:
        assert again is stub  # loaded once per process
        with sw.predictor(str(model), old, n) as second:
            assert second is not stub  # a predictor serves one task at a time
    model.write_text("bright")
    new = model_fingerprint(str(model), load(model))
    assert new["sha256"] != old["sha256"]
    with sw.predictor(str(model), new, n) as bright:
        assert bright is not stub and type(bright.model).__name__ == "_BrightNet"
    with pytest.raises(RuntimeError, match="weights changed"):
        with worker.SliceWorker().predictor(str(model), old, n):
            pass

    before = {**source_stats(tmp / "labels.tif")}
    first = sw.array(before)
    np.testing.assert_array_equal(first[1], labs[1])
    _replace_tiff(tmp / "labels.tif", labs[::-1].copy())
    with pytest.raises(RuntimeError, match="changed after the run started"):
        worker.SliceWorker().array(before)  # a run never reads a file changed under it
    after = source_stats(tmp / "labels.tif")
    np.testing.assert_array_equal(sw.array(after)[1], labs[3])


# -------------------------------------------------------------------- scheduler timeout


@pytest.fixture
def bad_scheduler(request):
    """A TCP address that is silent, answers garbage, or has nothing listening."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    if request.param == "closed":
        srv.close()
        yield f"tcp://127.0.0.1:{port}"
        return
    srv.listen(8)  # the kernel completes the handshake; nobody answers
    stop = threading.Event()
    conns = []

    def garbage():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conns.append(conn)
            try:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
            except OSError:
                pass

    thread = None
    if request.param == "garbage":
        thread = threading.Thread(target=garbage, daemon=True)
        thread.start()
    yield f"tcp://127.0.0.1:{port}"
    stop.set()
    if thread is not None:
        thread.join(2)
    for conn in conns:
        conn.close()
    srv.close()


@pytest.mark.parametrize("bad_scheduler", ["silent", "garbage", "closed"], indirect=True)
def test_scheduler_timeout_one_line_nothing_written(stack, stub_model, bad_scheduler, capsys):
    import time

    tmp, imgs, labs = stack
    before = set(tmp.iterdir())
    t0 = time.monotonic()
    rc = main(
        [
            "refine",
            str(tmp / "image.tif"),
            str(tmp / "labels.tif"),
            "-o",
            str(tmp / "out.zarr"),
            "--model",
            "stub",
            "--scheduler",
            bad_scheduler,
            "--timeout",
            "3",
            "--quiet",
        ]
    )
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert elapsed < 15
    assert err.startswith("napari-fcfi refine: error: --scheduler") and "\n" not in err
    assert set(tmp.iterdir()) == before  # nothing created before the scheduler answered


# ------------------------------------------------------------------------------ threads


@pytest.fixture
def four_cores_two_busy(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.2, 2.0, 2.0))
    monkeypatch.setattr(cores, "_cgroup_quota", lambda: None)


def test_default_threads_use_free_cores_divided_among_workers(four_cores_two_busy, monkeypatch):
    assert cores.allowed_cores() == 4 and cores.free_cores() == 2
    assert cores.default_threads(1) == 2 and cores.default_threads(2) == 1
    assert cores.default_threads(8) == 1 and cores.default_workers() == 2
    monkeypatch.setattr(cores, "_cgroup_quota", lambda: 1.5)  # a container with 1.5 CPUs
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cores.allowed_cores() == 2 and cores.default_threads(1) == 2

    from napari_fcfi.stack import cluster

    made = []
    monkeypatch.setattr(
        cluster.DaskRunner, "local", classmethod(lambda cls, n, t: made.append((n, t)))
    )
    stack_batch.make_runner(workers=1)
    stack_batch.make_runner(workers=1, threads=3)
    stack_batch.make_runner()
    assert made == [(1, 2), (1, 3), (2, 1)]


def test_synchronous_threads_default_and_flag(stack, stub_model, four_cores_two_busy, monkeypatch):
    import torch

    tmp, imgs, labs = stack
    seen = []
    real = stack_batch.slice_task

    def spy(job, index, wanted, threads=1, worker=None):
        seen.append(threads)
        return real(job, index, wanted, threads, worker=worker)

    monkeypatch.setattr(stack_batch, "slice_task", spy)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert _refine(tmp / "image.tif", tmp / "labels.tif", "-o", tmp / "a.zarr") == 0
        assert set(seen) == {2}  # the 2 free cores of 4, not 4
        assert torch.get_num_threads() == 1  # restored after the run
        seen.clear()
        args = ("-o", tmp / "b.zarr", "--threads", "1")
        assert _refine(tmp / "image.tif", tmp / "labels.tif", *args) == 0
        assert set(seen) == {1}
    finally:
        torch.set_num_threads(saved)
