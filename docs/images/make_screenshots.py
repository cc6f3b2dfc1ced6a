"""Make the user guide's screenshots (real napari windows; run under Xvfb).

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/images/make_screenshots.py \
        --model builtin

``--model``: ``builtin`` (default), a checkpoint path, or ``stub`` (analytic StubNet, for a
dry run). Clicks are placed automatically at the interior points of Otsu objects of the
sample images, i.e. where a user would click.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def load(name: str):
    if name == "stub":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
        from stubnet import StubNet

        return StubNet()
    import napari_fcfi

    return napari_fcfi.load_model(None if name == "builtin" else name, device="cpu")


def seeds(image: np.ndarray, n: int, min_area: int = 80) -> list[tuple[int, int]]:
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    from napari_fcfi.stack.propagate import interior_point

    lab = label(image > threshold_otsu(image))
    props = [p for p in regionprops(lab) if p.area >= min_area]
    # well-separated objects spread over the image
    props.sort(key=lambda p: (p.centroid[0] // 90, p.centroid[1]))
    out = []
    for p in props[:: max(1, len(props) // n)][:n]:
        out.append(interior_point(lab == p.label))
    return out


DSB_LABELS = (
    Path(__file__).resolve().parents[3] / "shared/data/dsb2018/train/labels/63d981a107091e1e.tif"
)


def load_gt(path):
    """Ground-truth instance labels of the ``nuclei2d`` sample (DSB2018 image
    63d981a107091e1e), used to place the clicks like the evaluation's robot user."""
    import tifffile

    path = Path(path) if path else DSB_LABELS
    return tifffile.imread(path) if path.is_file() else None


def robot_objects(w, gt, n, max_clicks=3, target_iou=0.85):
    """Segment ``n`` GT objects (away from the border, spread over the image) with the
    widget, each with robot-user clicks until IoU >= ``target_iou``; the last object is
    left active so that its clicks show. Returns the clicks and IoUs."""
    from skimage.measure import regionprops

    from napari_fcfi.evaluation import next_click
    from napari_fcfi.stack.propagate import iou

    h, wd = gt.shape
    props = [
        p
        for p in regionprops(gt)
        if p.area >= 300 and p.bbox[0] > 0 and p.bbox[1] > 0 and p.bbox[2] < h and p.bbox[3] < wd
    ]
    props.sort(key=lambda p: (p.centroid[0] // (h / 3), p.centroid[1]))
    chosen = props[:: max(1, len(props) // n)][:n]
    log = []
    for i, p in enumerate(chosen):
        obj = gt == p.label
        clicks, pred, score = [], np.zeros_like(obj), 0.0
        while len(clicks) < max_clicks and score < target_iou:
            y, x, positive = next_click(obj, pred, clicks)
            clicks.append((y, x, positive))
            w.add_click((y, x), positive)
            w.wait(300)
            pred = w.labels_layer.data == w.object_id
            score = iou(pred, obj)
        log.append({"clicks": [list(map(int, c)) for c in clicks], "iou": round(score, 3)})
        if i < len(chosen) - 1:
            w.finish_object()
            w.wait()
    return log


def close_toasts(viewer) -> None:
    """Close napari's notification pop-ups (e.g. the PyQt5 deprecation notice)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def main(argv=None) -> dict:
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_fcfi._sample_data import load_sample
    from napari_fcfi._widget import FCFIWidget

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--gt", help="labels of the nuclei2d sample (default: ../shared DSB)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    out = Path(args.out)
    model = load(args.model)
    info = {"model": args.model, "model_class": type(model).__name__, "files": []}
    cfg = Path(getattr(model, "checkpoint_path", "")).with_suffix(".json")
    if cfg.is_file():  # record which training step the weights come from
        meta = json.loads(cfg.read_text())
        info["model_meta"] = {k: meta[k] for k in ("arch", "step", "val_miou") if k in meta}

    def shot(viewer, name, reset=True):
        close_toasts(viewer)
        for _ in range(5):
            QApplication.processEvents()
        if reset:
            viewer.reset_view()
            QApplication.processEvents()
        viewer.screenshot(str(out / name), canvas_only=False, flash=False)
        info["files"].append(name)

    # ---- 2-D nuclei: before / after a few clicks
    viewer = napari.Viewer(title="napari-fcfi")
    viewer.window._qt_window.resize(1280, 800)
    data, meta, _ = load_sample("nuclei2d")[0]
    viewer.add_image(data, **meta)
    w = FCFIWidget(viewer, model=model)
    viewer.window.add_dock_widget(w, name="Interactive segmentation (FCFI)", area="right")
    w.device_combo.setCurrentText("cpu")
    w.click_mode_check.setChecked(True)
    for _ in range(10):
        QApplication.processEvents()
    viewer.reset_view()
    shot(viewer, "2d-before.png")
    gt = load_gt(args.gt)
    if gt is not None and gt.shape == data.shape:
        info["clicks_2d"] = robot_objects(w, gt, 7)
    else:  # no ground truth: one click at the interior point of Otsu objects
        for i, (y, x) in enumerate(seeds(data, 7)):
            w.add_click((y, x), True)
            w.wait(300)
            if i < 6:
                w.finish_object()
                w.wait()
    shot(viewer, "2d-after.png")
    info["objects_2d"] = int(len(np.unique(w.labels_layer.data)) - 1)
    viewer.close()

    # ---- 3-D stack: propagation in progress, then the result
    viewer = napari.Viewer(title="napari-fcfi")
    viewer.window._qt_window.resize(1280, 800)
    data, meta, _ = load_sample("nuclei3d")[0]
    layer = viewer.add_image(data, **meta)
    w = FCFIWidget(viewer, model=model)
    viewer.window.add_dock_widget(w, name="Interactive segmentation (FCFI)", area="right")
    w.device_combo.setCurrentText("cpu")
    for _ in range(10):
        QApplication.processEvents()
    viewer.reset_view()
    z = data.shape[0] // 2
    viewer.dims.set_point(0, layer.data_to_world((z, 0, 0))[0])
    y, x = seeds(data[z], 3, min_area=150)[1]
    w.add_click((z, y, x), True)
    w.wait(300)
    taken = {}

    def on_progress(value):
        if value == 5 and "mid" not in taken:
            taken["mid"] = True
            close_toasts(viewer)
            viewer.screenshot(str(out / "stack-propagating.png"), canvas_only=False, flash=False)

    w.progress.valueChanged.connect(on_progress)
    w.propagate()
    w.wait(900)
    if "mid" in taken:
        info["files"].append("stack-propagating.png")
    slices = [int(i) for i in np.flatnonzero((w.labels_layer.data == w.object_id).any((1, 2)))]
    info["propagated_slices"] = slices
    viewer.dims.ndisplay = 3
    layer.opacity = 0.35
    viewer.reset_view()
    obj = np.argwhere(w.labels_layer.data == w.object_id)
    if len(obj):
        viewer.camera.center = tuple(layer.data_to_world(obj.mean(0)))
        viewer.camera.zoom *= 2.5
    viewer.camera.angles = (0, -50, 60)
    shot(viewer, "stack-propagated-3d.png", reset=False)
    viewer.close()
    (out / "screenshots.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    main()
