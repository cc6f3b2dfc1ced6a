"""The network passes of a click: a view's input (:func:`make_job`), the flipped passes and
their average (:func:`run_passes`), and the answer pasted back into the image
(:class:`Prediction`). The rules are those of the official predictor; see
:mod:`napari_fcfi.inference.predictor` (**Flip**, **Paste**, **Memory**).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.clicks import points_array
from .guided import guided_filter
from .inputs import Map, PreparedImage
from .maps import Box, RoiMap
from .resample import ScaledMap, bilinear, linear_taps
from .views import View


@dataclass(frozen=True)
class Prediction:
    """Everything one click produced (``Predictor.last_prediction``).

    ``feedback_ffcm`` is pasted back at the view's resolution only when it is read (nothing
    in the click loop needs it; on a large view it would be as big as the probability)."""

    prob: Map
    ffcm_paste: Callable[[], Map | None]
    feedback_cffm: Map | None
    view: View
    roi_recomputed: bool
    points: np.ndarray  # (passes, 2N, 3) as passed to the network (original, flipped...)
    new_points: np.ndarray  # (passes, 1, 3) int64
    points_dtype: torch.dtype
    gate: float

    @property
    def feedback_ffcm(self) -> Map | None:
        return self.ffcm_paste()

    @property
    def roi(self) -> Box | None:
        """The official zoom-in ROI of this click, None when not zoomed."""
        return self.view.box if self.view.zoomed else None

    @property
    def net_input_hw(self) -> tuple[int, int]:
        return self.view.net_hw


@dataclass
class Job:
    """One object's network input, prepared on the CPU."""

    view: View
    clicks: list  # transformed clicks (y, x, index, positive), floats or ints
    crop: torch.Tensor  # (4, h, w) image + prev, at the box size or already at net_hw
    gate: float
    full_shape: tuple[int, int]


def make_job(prepared: PreparedImage, clicks, prev: Map | None, view: View) -> Job:
    """The network input of ``view``: image and feedback crop, clicks in its coordinates,
    and the gate (0 without feedback, 1 with)."""
    r0, r1, c0, c1 = view.box
    nh, nw = view.net_hw
    gate = 0.0 if prev is None or not prev.any_above(0.0) else 1.0
    if view.sampled:
        crop = sampled_input(prepared, prev, view)  # already at the network's size
    else:
        rgb = prepared.crop(view.box)
        if prev is None:
            pm = np.zeros((r1 - r0 + 1, c1 - c0 + 1), np.float32)
        else:
            pm = prev.region(r0, r1 + 1, c0, c1 + 1)
        crop = torch.from_numpy(np.concatenate([rgb.transpose(2, 0, 1), pm[None]], axis=0))
    if view.resized or view.zoomed:
        hh, ww = r1 - r0 + 1, c1 - c0 + 1
        tclicks = [
            (nh * (y - r0) / hh, nw * (x - c0) / ww, i, p) for i, (y, x, p) in enumerate(clicks)
        ]
    else:
        tclicks = [(y - r0, x - c0, i, p) for i, (y, x, p) in enumerate(clicks)]
    return Job(view, tclicks, crop, gate, prepared.shape)


def sampled_input(prepared: PreparedImage, prev: Map | None, view: View) -> torch.Tensor:
    """(4, nh, nw) network input of a large resized view without normalising the box.

    Only the image rows and columns that bilinear ``align_corners=True`` resizing reads are
    taken from the raw image (and from the feedback), normalised, then interpolated with
    the resize's weights: the same values as normalising the whole box and resizing it, at
    a cost bounded by the network input.
    """
    r0, r1, c0, c1 = view.box
    nh, nw = view.net_hw
    axes = []
    for n_in, n_out in ((r1 - r0 + 1, nh), (c1 - c0 + 1, nw)):
        i0, i1, l0, l1 = linear_taps(n_in, n_out)
        used = np.unique(np.concatenate([i0, i1]))
        axes.append((used, (np.searchsorted(used, i0), np.searchsorted(used, i1), l0, l1)))
    (rows, ty), (cols, tx) = axes
    rgb = bilinear(prepared.grid(rows + r0, cols + c0), ty, tx)
    if prev is None:
        pm = np.zeros((nh, nw), np.float32)
    else:
        pm = bilinear(prev.take(rows + r0, cols + c0), ty, tx)
    return torch.from_numpy(np.concatenate([rgb.transpose(2, 0, 1), pm[None]], axis=0))


def run_passes(
    model,
    device: torch.device,
    jobs: list[Job],
    recomputed: list[bool],
    transforms: tuple,
    guided: tuple[int, float] = (0, 0.01),
) -> list[Prediction]:
    """Run one batch of jobs that share the network input size and the gate, once per
    pass of ``transforms`` (``(flipped dims, transposed)`` pairs, see
    :data:`~napari_fcfi.inference.settings.FLIP_AXES`), and average the passes' logits.
    ``guided``: ``(radius, eps)`` of the guided filter applied to the probability of
    answers with feedback (:mod:`~napari_fcfi.inference.guided`; radius 0: none)."""
    nh, nw = jobs[0].view.net_hw
    gate = jobs[0].gate
    float_coords = any(j.view.resized or j.view.zoomed for j in jobs)
    plain = [[(y, x, p) for y, x, _, p in j.clicks] for j in jobs]
    batch_clicks = [
        [(*moved(y, x, dims, t, nh, nw), p) for y, x, p in bc]
        for dims, t in transforms
        for bc in plain
    ]
    n = max(max(sum(p for *_, p in bc), sum(not p for *_, p in bc), 1) for bc in batch_clicks)
    points = np.stack([padded_points(bc, n) for bc in batch_clicks])
    new_points = np.asarray(
        [[[y, x, 1.0 if p else 0.0]] for y, x, p in (bc[-1] for bc in batch_clicks)]
    )
    pdtype = torch.float64 if float_coords else torch.int64
    b = len(jobs)
    with torch.inference_mode():
        parts = []
        for j in jobs:
            c = j.crop[None].to(device)
            if tuple(c.shape[-2:]) != (nh, nw):
                c = F.interpolate(c, size=(nh, nw), mode="bilinear", align_corners=True)
            parts.append(c)
        x = torch.cat(parts)
        if not float_coords:
            pts = torch.from_numpy(points.astype(np.int64)).to(device)
        elif device.type == "mps":  # no float64 on Apple GPUs
            pts = torch.from_numpy(points.astype(np.float32)).to(device)
        else:
            pts = torch.from_numpy(points).to(device)
        # int64 casts truncate toward zero, as the official predictor's tensor cast
        newp = torch.from_numpy(new_points.astype(np.int64)).to(device)
        # one batch for the flips, one for their transposes (a non-square input changes
        # shape when transposed); each answer is transposed back at once
        answers: dict[str, list] = {}
        flips = []  # the flipped dims of each pass, in the order of the answers
        for transposed in (False, True):
            ks = [k for k, (_, t) in enumerate(transforms) if t == transposed]
            if not ks:
                continue
            dims = [transforms[k][0] for k in ks]
            flips += dims
            xg = torch.cat([torch.flip(x, dims=d) if d else x for d in dims])
            if transposed:
                xg = xg.transpose(-1, -2)
            sel = [k * b + i for k in ks for i in range(b)]
            out = model(xg[:, :3], xg[:, 3:4], pts[sel], newp[sel], gate)
            for key in ("instances", "feedback_ffcm", "feedback_cffm"):
                if out.get(key) is not None:
                    m = out[key]
                    answers.setdefault(key, []).append(m.transpose(-1, -2) if transposed else m)
        maps = {key: torch.cat(v) for key, v in answers.items()}
        merged = {}
        for key, m in maps.items():
            m = m.float()
            if m.shape[-2:] != (nh, nw):
                m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=True)
            if len(flips) > 1:
                views = [m[k * b : (k + 1) * b] for k in range(len(flips))]
                m = sum(torch.flip(v, dims=d) if d else v for v, d in zip(views, flips))
                m = m / len(flips)
            if key == "instances":
                if not bool(torch.isfinite(m).all()):
                    warnings.warn(
                        "the network returned NaN or infinite values; the mask of this "
                        "click is empty where they occur (check the model's weights and "
                        "the image)",
                        RuntimeWarning,
                        stacklevel=5,
                    )
                m = torch.sigmoid(m)
                if gate != 0 and guided[0] > 0:
                    guide = x[:b, :3].float().mean(dim=1, keepdim=True)
                    m = guided_filter(m, guide, guided[0], guided[1]).clamp_(0.0, 1.0)
            merged[key] = m
        results = []
        pts_np = pts.cpu().numpy()
        newp_np = newp.cpu().numpy()
        nb = len(transforms)
        for i, job in enumerate(jobs):
            pasted = {
                key: paste(m[i : i + 1], job) for key, m in merged.items() if key != "feedback_ffcm"
            }
            ffcm = merged.get("feedback_ffcm")
            ffcm_paste = lazy_paste(None if ffcm is None else ffcm[i : i + 1].cpu(), job)
            sel = [i + k * b for k in range(nb)]
            results.append(
                Prediction(
                    prob=pasted["instances"],
                    ffcm_paste=ffcm_paste,
                    feedback_cffm=pasted.get("feedback_cffm"),
                    view=job.view,
                    roi_recomputed=recomputed[i],
                    points=pts_np[sel],
                    new_points=newp_np[sel],
                    points_dtype=pdtype,
                    gate=gate,
                )
            )
    return results


def paste(m: torch.Tensor, job: Job) -> Map:
    """A (1, 1, h, w) network-resolution map pasted back into the job's view box: kept at
    network resolution (a :class:`~napari_fcfi.inference.resample.ScaledMap`, read on
    demand) for a sampled view (:attr:`View.sampled`)."""
    r0, r1, c0, c1 = job.view.box
    if job.view.sampled:
        return ScaledMap(job.full_shape, job.view.box, m[0, 0].cpu().numpy())
    if job.view.resized or job.view.zoomed:
        m = F.interpolate(m, size=(r1 - r0 + 1, c1 - c0 + 1), mode="bilinear", align_corners=True)
    return RoiMap(job.full_shape, r0, c0, m[0, 0].cpu().numpy())


def lazy_paste(m: torch.Tensor | None, job: Job) -> Callable[[], Map | None]:
    """:func:`paste` run on first call (and remembered)."""
    done: list = []

    def get() -> Map | None:
        if not done:
            done.append(None if m is None else paste(m, job))
        return done[0]

    return get


def moved(y, x, dims, transposed: bool, nh: int, nw: int):
    """A click's network coordinates in a pass flipped along ``dims`` (2: rows, 3: columns)
    of an ``nh x nw`` input, then transposed."""
    y = nh - y - 1 if 2 in dims else y
    x = nw - x - 1 if 3 in dims else x
    return (x, y) if transposed else (y, x)


def padded_points(clicks, n: int) -> np.ndarray:
    """One batch element's official (2n, 3) layout, padded to ``n`` rows per group."""
    pts = points_array([(y, x, p) for y, x, p in clicks])
    k = pts.shape[0] // 2
    pad = np.full((n - k, 3), -1.0)
    return np.concatenate([pts[:k], pad, pts[k:], pad])
