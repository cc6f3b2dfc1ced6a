"""Carry one object through a stack, slice by slice (no Qt).

Starting from the object's mask on one slice, each neighbouring slice is segmented with an
:class:`~napari_fcfi.inference.session.InteractiveSession` whose feedback is the previous
slice's mask and a single automatic positive click at the previous mask's *interior point*
(the pixel farthest from its border, :func:`~napari_fcfi.masks.interior_point`).
Propagation runs in both directions and stops in a direction when

* the object is gone -- ``reason="vanished"``: the new mask is empty, or the image no
  longer shows the object under it (:class:`~napari_fcfi.stack.evidence.Evidence`: too
  few of its pixels above the stack's foreground level, or too little contrast against
  its surroundings, compared with the start slice). This is what ends a nucleus at its top
  and bottom, where the network, fed the previous mask, would otherwise keep drawing a
  "ghost" of it on the slices past its end;
* the mask jumps -- ``reason="iou"``: the IoU with the previous slice's mask falls below
  ``iou_threshold``;
* the next slice is a *stop slice* (the user put a negative "stop" click there) --
  ``reason="stop"``;
* or at the end of the stack (no step says ``stopped`` in that direction).

A slice that fails a stop rule is not part of the result. :func:`iter_propagate` yields one
:class:`PropagationStep` per slice so that a GUI can show progress, write results as they
arrive and cancel between slices; :func:`propagate` collects the accepted masks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np

from ..masks import interior_point, iou
from .evidence import Evidence

__all__ = ["PropagationStep", "iter_propagate", "propagate"]

STOP_REASONS = ("vanished", "iou", "stop")


@dataclass(frozen=True)
class PropagationStep:
    """One slice visited by the propagation.

    ``mask`` is the accepted mask of slice ``index`` (``None`` when the propagation stopped
    at this slice, see ``stopped``); ``click`` the automatic positive click ``(y, x)`` used;
    ``iou`` the IoU with the previous slice's mask; ``evidence`` the image evidence for the
    object relative to the start slice (1.0 = as much as there; ``nan`` when the rule is
    off, see :class:`~napari_fcfi.stack.evidence.Evidence`); ``direction`` +1 or -1; ``done`` and ``total`` count the
    slices visited so far and the most that can be visited.
    """

    index: int
    direction: int
    mask: np.ndarray | None
    click: tuple[int, int] | None
    iou: float
    stopped: str | None
    done: int
    total: int
    evidence: float = float("nan")


def iter_propagate(
    session_factory: Callable,
    get_slice: Callable[[int], np.ndarray],
    start_index: int,
    start_mask: np.ndarray,
    n_slices: int,
    *,
    iou_threshold: float = 0.5,
    evidence: bool = True,
    stop_slices: Collection[int] = (),
    directions: tuple[int, ...] = (1, -1),
    max_slices: int | None = None,
) -> Iterator[PropagationStep]:
    """Propagate ``start_mask`` from slice ``start_index`` through ``n_slices`` slices.

    Parameters
    ----------
    session_factory
        ``session_factory(image, feedback) -> InteractiveSession``; typically
        ``lambda img, fb: InteractiveSession(predictor, img, feedback=fb)``.
    get_slice
        ``get_slice(i)`` returns the 2-D image (H, W) or (H, W, C) of slice ``i``, or a
        :class:`~napari_fcfi.inference.inputs.PreparedImage` of it.
    start_index, start_mask
        The slice the object is on and its boolean (H, W) mask there (not empty).
    n_slices
        Number of slices along the propagation axis.
    iou_threshold
        Stop in a direction when the new mask's IoU with the previous one is below this.
    evidence
        Stop in a direction when the image no longer shows the object
        (:class:`~napari_fcfi.stack.evidence.Evidence`); False keeps only the mask, IoU
        and stop-slice rules.
    stop_slices
        Slice indices that are never entered (the user's negative "stop" clicks).
    directions
        ``(1,)`` forwards only, ``(-1,)`` backwards only, ``(1, -1)`` both (default).
    max_slices
        Visit at most this many slices per direction (``None``: no limit).

    Yields
    ------
    PropagationStep
        One per visited slice, in processing order (all forward slices first).
    """
    start_mask = np.asarray(start_mask, dtype=bool)
    if start_mask.ndim != 2:
        raise ValueError(f"start_mask must be a 2-D boolean mask, got shape {start_mask.shape}")
    if not start_mask.any():
        raise ValueError(
            "the object is empty on the start slice; segment it there before propagating"
        )
    if not 0 <= start_index < n_slices:
        raise ValueError(f"start_index {start_index} is outside the stack of {n_slices} slices")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if not directions or any(d not in (1, -1) for d in directions):
        raise ValueError(f"directions must be a non-empty tuple of +1/-1, got {directions}")
    if max_slices is not None and max_slices < 1:
        raise ValueError(f"max_slices must be >= 1, got {max_slices}")
    stop = {int(s) for s in stop_slices}

    def reach(d: int) -> int:
        n = (n_slices - 1 - start_index) if d > 0 else start_index
        return n if max_slices is None else min(n, max_slices)

    total = sum(reach(d) for d in directions)
    rule = Evidence(get_slice, n_slices, start_index, start_mask) if evidence else None
    done = 0
    for d in directions:
        prev = start_mask
        for step in range(1, reach(d) + 1):
            index = start_index + d * step
            done += 1
            if index in stop:
                yield PropagationStep(index, d, None, None, 0.0, "stop", done, total)
                break
            click = interior_point(prev)
            image = get_slice(index)
            session = session_factory(image, prev.astype(np.float32))
            session.add_click(click[0], click[1], True)
            mask = np.asarray(session.mask, dtype=bool)
            if mask.shape != prev.shape:
                raise ValueError(f"slice {index} has shape {mask.shape}, expected {prev.shape}")
            if not mask.any():
                yield PropagationStep(index, d, None, click, 0.0, "vanished", done, total, 0.0)
                break
            score = iou(mask, prev)
            rel = float("nan") if rule is None else rule.measure(image, mask)
            if rule is not None and not rule.present(rel):
                yield PropagationStep(index, d, None, click, score, "vanished", done, total, rel)
                break
            if score < iou_threshold:
                yield PropagationStep(index, d, None, click, score, "iou", done, total, rel)
                break
            yield PropagationStep(index, d, mask, click, score, None, done, total, rel)
            prev = mask


def propagate(
    session_factory: Callable,
    get_slice: Callable[[int], np.ndarray],
    start_index: int,
    start_mask: np.ndarray,
    n_slices: int,
    **kwargs,
) -> dict[int, np.ndarray]:
    """Run :func:`iter_propagate` to the end; returns ``{slice index: mask}`` of the accepted
    slices (the start slice not included)."""
    return {
        s.index: s.mask
        for s in iter_propagate(
            session_factory, get_slice, start_index, start_mask, n_slices, **kwargs
        )
        if s.mask is not None
    }
