"""The robot-user loop and the NoC metrics of the FCFI / RITM papers.

For every instance: start with an empty prediction; ``max_clicks`` times, place the robot
user's next click (:func:`~napari_fcfi.evaluation.next_click`), predict, binarise (at the
predictor's thresholds for the first click and the later ones: 0.49 unless the model's
settings or a preset say otherwise) and record the IoU. All clicks are always made, so that mIoU@k is defined for every k.

Metrics (:func:`summarize`): NoC@t is the first click count whose IoU reaches t, or
``max_clicks`` when it never does; ``NoC@90>=max`` counts the instances whose NoC@90 is at
or past the maximum; ``mIoU`` is the mean IoU after k clicks for k = 1..max;
``sec_per_click`` is the mean wall time of one prediction.
"""

from __future__ import annotations

import time

import numpy as np

from ..masks import iou as mask_iou
from .clicker import next_click, split_gt

THRESHOLD = 0.49
METHODS = ("fcfi", "fcfi-nofeedback", "random-walker", "watershed")


def iou(gt, pred) -> float:
    """IoU of ``pred`` with the object of ``gt`` (ignore pixels excluded); 1 when both are
    empty."""
    obj, valid = split_gt(gt)
    return mask_iou(obj, pred, valid)


class FcfiMethod:
    """FCFI through :class:`~napari_fcfi.Predictor`; ``feedback=False`` is the paper's
    ablation: the previous prediction is not fed back (zeros, gate 0)."""

    def __init__(self, predictor, feedback: bool = True, model_name=None):
        self.predictor = predictor
        self.feedback = feedback
        self.name = "fcfi" if feedback else "fcfi-nofeedback"
        self.model = model_name

    def start(self, image) -> None:
        self.image = self.predictor.prepare_image(image)

    def start_object(self) -> None:
        self.predictor.reset_state()

    def predict(self, clicks, prev_prob=None) -> np.ndarray:
        return self.predictor.predict(self.image, clicks, prev_prob if self.feedback else None)

    def threshold_for(self, first: bool) -> float:
        """The predictor's threshold for the first click's answer or a later one."""
        return self.predictor.threshold_for(first)


def make_method(name: str, predictor=None, model_name=None):
    """A method object by name (``fcfi`` methods need a predictor)."""
    from .baselines import RandomWalker, Watershed

    if name in ("fcfi", "fcfi-nofeedback"):
        if predictor is None:
            raise ValueError(f"method {name!r} needs a Predictor")
        return FcfiMethod(predictor, feedback=name == "fcfi", model_name=model_name)
    if name == "random-walker":
        return RandomWalker()
    if name == "watershed":
        return Watershed()
    raise ValueError(f"unknown method {name!r}; choose one of {METHODS}")


def robot_answers(method, gt, max_clicks: int = 20, threshold: float | None = None):
    """The robot user's loop on one object (``method.start(image)`` must have been called):
    yields, after each of ``max_clicks`` answers, ``(clicks, prob, pred, seconds)``: the
    clicks so far, the probability map, its binarisation and the prediction time.

    Each answer is binarised at ``threshold``; None: the method's own thresholds for the
    first click and the later ones (``method.threshold_for(first)``), else 0.49.
    """
    if max_clicks < 1:
        raise ValueError("max_clicks must be >= 1")
    gt = np.asarray(gt)
    method.start_object()
    pred = np.zeros(gt.shape, bool)
    clicks: list = []
    prev = None
    own = getattr(method, "threshold_for", None)
    for k in range(max_clicks):
        clicks.append(next_click(gt, pred, clicks))
        t0 = time.perf_counter()
        prob = method.predict(list(clicks), prev)
        seconds = time.perf_counter() - t0
        if threshold is not None:
            t = threshold
        else:
            t = own(k == 0) if own is not None else THRESHOLD
        pred = prob > t
        prev = prob
        yield list(clicks), prob, pred, seconds


def evaluate_instance(method, gt, max_clicks: int = 20, threshold: float | None = None):
    """Run the robot user on one object (:func:`robot_answers`).

    Returns ``(ious, seconds)``: per-click IoU and prediction time, each of length
    ``max_clicks``.
    """
    ious, secs = [], []
    for _, _, pred, seconds in robot_answers(method, gt, max_clicks, threshold):
        ious.append(iou(gt, pred))
        secs.append(seconds)
    return np.asarray(ious), np.asarray(secs)


def noc(ious: np.ndarray, thresh: float, max_clicks: int) -> int:
    reached = np.flatnonzero(np.asarray(ious) >= thresh)
    return int(reached[0]) + 1 if reached.size else max_clicks


#: object-area bins (px²) of the size-stratified table: small, median and large DSB nuclei,
#: then whole cells
SIZE_BINS = (0, 100, 250, 600, 2000, 8000)


def one_pixel_reference(obj: np.ndarray) -> tuple[float, float]:
    """IoU of a perfect mask grown, and shrunk, by one pixel (3x3 cross) against itself:
    the agreement a one-pixel boundary disagreement allows."""
    from scipy import ndimage as ndi

    obj = np.asarray(obj, bool)
    n = np.count_nonzero(obj)
    if n == 0:
        return 1.0, 1.0
    grown = np.count_nonzero(ndi.binary_dilation(obj))
    shrunk = np.count_nonzero(ndi.binary_erosion(obj, border_value=1))
    return n / grown, shrunk / n


def by_size(ious: np.ndarray, areas, max_clicks: int) -> list[dict]:
    """NoC and mIoU per object-area bin (:data:`SIZE_BINS`)."""
    ious = np.asarray(ious, dtype=np.float64).reshape(-1, max_clicks)
    areas = np.asarray(areas, dtype=np.float64)
    rows = []
    edges = list(SIZE_BINS) + [np.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (areas >= lo) & (areas < hi)
        if not sel.any():
            continue
        sub = ious[sel]
        rows.append(
            {
                "area": [float(lo), None if np.isinf(hi) else float(hi)],
                "instances": int(sel.sum()),
                "NoC@85": float(np.mean([noc(i, 0.85, max_clicks) for i in sub])),
                "NoC@90": float(np.mean([noc(i, 0.90, max_clicks) for i in sub])),
                "mIoU@1": float(sub[:, 0].mean()),
                "mIoU@3": float(sub[:, min(2, max_clicks - 1)].mean()),
                "mIoU@max": float(sub[:, -1].mean()),
            }
        )
    return rows


def summarize(
    all_ious, all_secs, max_clicks: int, method: str, model=None, areas=None, reference=None
) -> dict:
    """The benchmark's JSON record from per-instance IoU and time arrays (with ``areas``,
    the size-stratified table; with ``reference``, per-instance (grown, shrunk) one-pixel
    IoUs, their summary)."""
    ious = np.asarray(all_ious, dtype=np.float64).reshape(-1, max_clicks)
    secs = np.asarray(all_secs, dtype=np.float64)
    n = len(ious)
    out = {"instances": n, "max_clicks": max_clicks}
    for t in (80, 85, 90):
        out[f"NoC@{t}"] = float(np.mean([noc(i, t / 100, max_clicks) for i in ious])) if n else None
    out["NoC@90>=max"] = int(sum(noc(i, 0.9, max_clicks) >= max_clicks for i in ious))
    out["mIoU"] = [float(v) for v in ious.mean(axis=0)] if n else []
    out["sec_per_click"] = float(secs.mean()) if secs.size else None
    out["method"] = method
    out["model"] = model
    if areas is not None and n:
        out["by_size"] = by_size(ious, areas, max_clicks)
    if reference is not None and n:
        ref = np.asarray(reference, dtype=np.float64).reshape(-1, 2)
        out["one_pixel_reference"] = {
            "grown_mean_iou": float(ref[:, 0].mean()),
            "shrunk_mean_iou": float(ref[:, 1].mean()),
            "grown_frac_at_90": float(np.mean(ref[:, 0] >= 0.9)),
            "shrunk_frac_at_90": float(np.mean(ref[:, 1] >= 0.9)),
        }
    return out
