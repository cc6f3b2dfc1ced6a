"""Feature backpropagating refinement (f-BRS) around an FCFI-Lite network, on the
robot-user protocol.

f-BRS-B (Sofiiuk et al., CVPR 2020) makes an answer agree with its clicks at test time,
without retraining: when the flip-averaged probability at a positive click is at or below
``--threshold``, or at a negative one at or above it, a per-channel scale and bias of the
fused features are optimised with L-BFGS (scipy, at most ``--evaluations`` function
evaluations, regularised as in f-BRS) so that every click's probability moves towards its
label, and FFCM, CFFM and the heads are run again on the new features. Answers that agree
with their clicks cost nothing more. The figures are those of ``napari-fcfi evaluate`` on
the same objects, with the same settings; ``benchmarks/bench_click_agreement.py`` measures
how often the answers disagree with their clicks in the first place.

    python benchmarks/bench_fbrs.py [--images DIR --labels DIR] [--model NAME]
        [--preset nuclei] [--max-instances 300] [--seed 0] [--json out.json]

The defaults read the DSB2018 validation split from the shared data folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from torch import nn


def _with_settings(wrapper: nn.Module, net: nn.Module) -> nn.Module:
    """``wrapper`` carrying ``net``'s inference settings (the predictor reads them)."""
    wrapper.inference_defaults = dict(net.inference_defaults)
    wrapper.inference_presets = {k: dict(v) for k, v in net.inference_presets.items()}
    wrapper.checkpoint_path = getattr(net, "checkpoint_path", None)
    return wrapper.eval()


class FeatureBRS(nn.Module):
    """f-BRS-B around an FCFI-Lite network (see the module docstring); ``stats`` counts the
    answers, those refined, those that agree with their clicks afterwards, the function
    evaluations and the seconds spent."""

    def __init__(self, net, threshold=0.49, evaluations=20, reg=1e-3, bias_reg=10.0):
        super().__init__()
        self.net = net
        self.threshold = float(threshold)
        self.evaluations = int(evaluations)
        self.reg, self.bias_reg = float(reg), float(bias_reg)
        self.stats = {"answers": 0, "refined": 0, "agree_after": 0, "evaluations": 0, "s": 0.0}
        _with_settings(self, net)

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        from scipy.optimize import fmin_l_bfgs_b

        from napari_fcfi.model.clicks import disk_maps
        from napari_fcfi.model.ffcm import resize_ac
        from napari_fcfi.model.lite import _newest_points

        net = self.net
        self.stats["answers"] += 1
        t0 = time.perf_counter()
        with torch.inference_mode(False):  # the predictor runs the network in inference mode
            image, points = image.clone(), points.clone()
            new_points = _newest_points(points) if new_points is None else new_points.clone()
            h, w = int(image.shape[-2]), int(image.shape[-1])
            with torch.no_grad():
                prev = resize_ac(prev_mask.clone(), (h, w)).to(image.dtype)
                disks = disk_maps(points, h, w, net.norm_radius).to(image.dtype)
                coord = torch.cat([prev, disks], dim=1)
                image_norm = (image - net.mean) / net.std
                feats, stem = net._features(image_norm, coord)

            def run(scale, bias):
                f = feats * (1 + scale).view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
                fb1 = net.ffcm(f, image_norm, coord, prev, new_points.to(f.dtype))
                f2, fb2 = net.cffm(f, fb1, gate)
                logits = net.head(f2)
                if net.half_res_refine:
                    coarse = resize_ac(logits, stem.shape[-2:])
                    logits = coarse + net.refine(torch.cat([stem, coarse], dim=1))
                return resize_ac(logits, (h, w)), fb1, fb2

            # the batch holds the flipped passes of one view: the same clicks, row for row,
            # each at its own pass's coordinates; a click's probability is that of the
            # passes' mean logit, as the predictor averages them
            pts = points.detach().cpu().numpy()
            n = pts.shape[1] // 2
            rows = np.flatnonzero((pts[0, :, 0] >= 0) & (pts[0, :, 1] >= 0))
            ys = torch.from_numpy(np.clip(np.rint(pts[:, rows, 0]), 0, h - 1).astype(np.int64))
            xs = torch.from_numpy(np.clip(np.rint(pts[:, rows, 1]), 0, w - 1).astype(np.int64))
            pos = torch.from_numpy(rows < n)
            passes = torch.arange(pts.shape[0])[:, None].expand(-1, len(rows))
            t = self.threshold

            def click_probs(logits):
                return torch.sigmoid(logits[passes, 0, ys, xs].mean(0))

            def agree(p):
                return bool((p[pos] > t).all()) and bool((p[~pos] < t).all())

            c = feats.shape[1]
            with torch.no_grad():
                zero = torch.zeros(c, dtype=feats.dtype)
                logits, fb1, fb2 = run(zero, zero)
            if len(rows) and not agree(click_probs(logits)):
                self.stats["refined"] += 1

                def loss_and_grad(x):
                    self.stats["evaluations"] += 1
                    xt = torch.from_numpy(x).to(feats.dtype).requires_grad_(True)
                    with torch.enable_grad():
                        scale, bias = xt[:c], xt[c:]
                        p = click_probs(run(scale, bias)[0])
                        loss = ((1 - p[pos]) ** 2).sum() / max(int(pos.sum()), 1)
                        loss = loss + (p[~pos] ** 2).sum() / max(int((~pos).sum()), 1)
                        loss = loss + self.reg * (
                            (scale**2).sum() + self.bias_reg * (bias**2).sum()
                        )
                    value = float(loss.detach())
                    if agree(p.detach()):  # done: a zero gradient stops L-BFGS
                        return value, np.zeros_like(x)
                    loss.backward()
                    return value, xt.grad.numpy().astype(np.float64)

                x, _, _ = fmin_l_bfgs_b(
                    loss_and_grad,
                    np.zeros(2 * c),
                    m=20,
                    factr=0,
                    pgtol=1e-8,
                    maxfun=self.evaluations,
                )
                xt = torch.from_numpy(x).to(feats.dtype)
                with torch.no_grad():
                    logits, fb1, fb2 = run(xt[:c], xt[c:])
                self.stats["agree_after"] += int(agree(click_probs(logits)))
        self.stats["s"] += time.perf_counter() - t0
        return {
            "instances": logits,
            "feedback_ffcm": resize_ac(fb1, (h, w)),
            "feedback_cffm": resize_ac(fb2, (h, w)),
        }


def main(argv=None) -> int:
    from _protocol import (
        add_method_arguments,
        add_protocol_arguments,
        method_objects,
        protocol_method,
    )

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_protocol_arguments(p)
    add_method_arguments(p)
    p.add_argument(
        "--threshold",
        type=float,
        default=0.49,
        help="a click agrees when its probability is on its side of this",
    )
    p.add_argument("--evaluations", type=int, default=20, help="L-BFGS function evaluations")
    args = p.parse_args(argv)
    if not args.labels.is_dir():
        print(f"bench_fbrs: no label folder {args.labels}", file=sys.stderr)
        return 2

    from napari_fcfi.evaluation.robot import evaluate_instance, summarize

    method, model = protocol_method(
        args, wrap=lambda net: FeatureBRS(net, args.threshold, args.evaluations)
    )
    ious, secs, areas = [], [], []
    for gt in method_objects(args, method):
        i, s = evaluate_instance(method, gt, args.max_clicks)
        ious.append(i)
        secs.append(s)
        areas.append(int(gt.sum()))
    out = summarize(ious, secs, args.max_clicks, "fcfi", args.model, areas=areas)
    out["fbrs"] = dict(model.stats)
    m = out["mIoU"]
    print(
        f"f-BRS: {out['instances']} instances, NoC@80 {out['NoC@80']:.2f}, "
        f"NoC@85 {out['NoC@85']:.2f}, NoC@90 {out['NoC@90']:.2f}, "
        f"NoC@90>=max {out['NoC@90>=max']}, mIoU@1 {m[0]:.3f}, mIoU@{len(m)} {m[-1]:.3f}, "
        f"{out['sec_per_click']:.3f} s/click"
    )
    print("answers", out["fbrs"])
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
