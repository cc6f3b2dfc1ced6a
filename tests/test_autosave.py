"""Finished work is never lost: atomic saves, restore, and a SIGKILL in mid-annotation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_fcfi.annotation.autosave import check_path, load_labels, save_labels

DATA = Path(__file__).parent / "data" / "one_click.npz"


def test_save_and_load_round_trip(tmp_path):
    labels = np.zeros((3, 20, 30), np.uint32)
    labels[1, 5:9, 5:9] = 70000
    path = save_labels(tmp_path / "out.tif", labels)
    back = load_labels(path)
    assert back.dtype == labels.dtype
    np.testing.assert_array_equal(back, labels)
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]  # no temporary file left


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    import tifffile

    first = np.full((8, 8), 3, np.uint16)
    path = save_labels(tmp_path / "out.tif", first)

    def broken(file, data, **kwargs):
        with open(file, "wb") as fh:
            fh.write(b"II*\x00partial")  # a torn write, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        save_labels(path, np.zeros((8, 8), np.uint16))
    monkeypatch.undo()
    np.testing.assert_array_equal(load_labels(path), first)
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_bad_paths_and_data_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.tif"):
        check_path(tmp_path / "out.png")
    with pytest.raises(ValueError, match="does not exist"):
        check_path(tmp_path / "missing" / "out.tif")
    with pytest.raises(ValueError, match="integer"):
        save_labels(tmp_path / "out.tif", np.zeros((4, 4), np.float32))
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="cannot read"):
        load_labels(tmp_path / "bad.tif")


KILL_SCRIPT = """
import sys, time
import numpy as np
from qtpy.QtWidgets import QApplication
from napari_fcfi.cli import build_parser
from napari_fcfi._annotate import open_viewer
from napari_fcfi.masks import interior_point

out, gt_path = sys.argv[1], sys.argv[2]
gt = np.load(gt_path)["large_labels"]
args = build_parser().parse_args(
    ["annotate", "--sample", "nuclei2d", "--labels", out, "--device", "cpu"]
)
viewer, w = open_viewer(args)
for label in (23, 28):  # two whole nuclei clear of the border
    y, x = interior_point(gt == label)
    w.add_click((y, x))
    w.finish_object()
    w.wait(timeout=120)
print("FINISHED", flush=True)
w.add_click((300, 300))  # an object in progress when the process dies
while True:
    QApplication.processEvents()
    time.sleep(0.01)
"""


@pytest.mark.gui
def test_sigkill_mid_annotation_keeps_every_finished_object(tmp_path, make_napari_viewer):
    out = tmp_path / "labels.tif"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(out), str(DATA)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        line = ""
        while "FINISHED" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "FINISHED" in line, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = load_labels(out)
    assert saved.shape == (360, 360)
    ids = set(np.unique(saved)) - {0}
    assert len(ids) == 2, ids  # both finished objects, nothing torn
    for k in ids:
        assert np.count_nonzero(saved == k) > 500
    # the same command restores the work
    from napari_fcfi._annotate import open_viewer
    from napari_fcfi.cli import build_parser

    args = build_parser().parse_args(["annotate", "--sample", "nuclei2d", "--labels", str(out)])
    viewer, w = open_viewer(args, viewer=make_napari_viewer())
    np.testing.assert_array_equal(w.labels_layer.data, saved)
    assert w.output_edit.text() == str(out.resolve())
