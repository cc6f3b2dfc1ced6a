"""How well propagation follows objects through a stack, against a 3-D ground truth.

Every reference object is started on the slice where it is largest: one positive click at
its deepest pixel gives the start mask (the model's own, as a user would get it), and
:func:`~napari_fcfi.stack.propagate.iter_propagate` carries it up and down. The result is
compared with the reference slice by slice:

* **z-extent**: the first and last slice of the propagated object against the reference's;
* **ghosts**: propagated masks on slices where the reference object is absent;
* **stop reasons**: why each direction ended (``vanished``, ``iou``, or the end of the
  stack).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..inference.inputs import PreparedImage
from ..inference.normalize import sample_intensity_range
from ..inference.session import InteractiveSession
from ..masks import interior_point, iou
from ..stack.propagate import iter_propagate

__all__ = ["ObjectExtent", "evaluate_propagation", "summarize"]


@dataclass
class ObjectExtent:
    """One reference object: where it is, where propagation put it, and why it stopped."""

    label: int
    start: int
    ref_first: int
    ref_last: int
    first: int
    last: int
    ghosts: list[int] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    mean_iou: float = 0.0

    @property
    def extent_error(self) -> int:
        """The larger of the two end-slice errors, in slices."""
        return max(abs(self.first - self.ref_first), abs(self.last - self.ref_last))


def evaluate_propagation(
    predictor,
    stack: np.ndarray,
    labels: np.ndarray,
    *,
    min_area: int = 30,
    progress=None,
    **propagate_options,
) -> list[ObjectExtent]:
    """Propagate every object of ``labels`` (Z, H, W) through ``stack`` (Z, H, W[, C]).

    Objects whose largest slice has fewer than ``min_area`` pixels are left out.
    ``propagate_options`` go to :func:`~napari_fcfi.stack.propagate.iter_propagate`.
    ``progress(done, total)`` is called after each object.
    """
    stack = np.asarray(stack)
    labels = np.asarray(labels)
    if labels.ndim != 3 or stack.shape[: labels.ndim] != labels.shape:
        raise ValueError(
            f"labels {labels.shape} must be (Z, H, W) and match the stack {stack.shape}"
        )
    n = labels.shape[0]
    found = [(i, sl) for i, sl in enumerate(ndi.find_objects(labels), start=1) if sl is not None]
    rows = []
    rgb = stack.ndim == 4
    # one intensity range for the whole stack, as the widget uses: a dim end slice stays dim
    intensity = sample_intensity_range(stack, predictor.normalize, rgb=rgb)
    planes: dict[int, PreparedImage] = {}

    def plane(i: int) -> PreparedImage:
        if i not in planes:
            planes[i] = PreparedImage(stack[i], predictor.normalize, intensity=intensity)
        return planes[i]

    def session(image, feedback):
        # a propagated slice starts from its neighbour's mask: a prior, not a correction
        return InteractiveSession(predictor, image, feedback=feedback, prior=True)

    for done, (label, sl) in enumerate(found, start=1):
        obj = labels[sl] == label
        areas = obj.sum(axis=(1, 2))
        if areas.max() < min_area:
            continue
        start = sl[0].start + int(np.argmax(areas))
        present = np.flatnonzero((labels == label).any(axis=(1, 2)))
        y, x = interior_point(labels[start] == label)
        first_session = session(plane(start), None)
        first_session.add_click(y, x, True)
        mask = np.asarray(first_session.mask, dtype=bool)
        row = ObjectExtent(label, start, int(present[0]), int(present[-1]), start, start)
        if not mask.any():
            row.reasons = {"start": "empty"}
            rows.append(row)
            continue
        ious = [iou(mask, labels[start] == label)]
        row.reasons = {"up": "end of stack", "down": "end of stack"}
        for step in iter_propagate(session, plane, start, mask, n, **propagate_options):
            side = "up" if step.direction > 0 else "down"
            if step.mask is None:
                row.reasons[side] = step.stopped
                continue
            row.first, row.last = min(row.first, step.index), max(row.last, step.index)
            ref = labels[step.index] == label
            if not ref.any():
                row.ghosts.append(step.index)
            ious.append(iou(step.mask, ref))
        row.ghosts.sort()
        row.mean_iou = float(np.mean(ious))
        rows.append(row)
        if progress is not None:
            progress(done, len(found))
    return rows


def summarize(rows: list[ObjectExtent], tolerance: int = 1) -> dict:
    """Share of objects within ``tolerance`` slices of the reference extent, ghost count,
    mean per-slice IoU, and the per-object rows."""
    if not rows:
        raise ValueError("no objects to summarize")
    within = [r.extent_error <= tolerance for r in rows]
    return {
        "objects": len(rows),
        "tolerance": tolerance,
        "within_tolerance": float(np.mean(within)),
        "objects_with_ghosts": int(sum(bool(r.ghosts) for r in rows)),
        "ghost_slices": int(sum(len(r.ghosts) for r in rows)),
        "mean_iou": float(np.mean([r.mean_iou for r in rows])),
        "rows": [asdict(r) | {"extent_error": r.extent_error} for r in rows],
    }
