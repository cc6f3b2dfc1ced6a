"""Package a training run's weights as the built-in model (or as a candidate to evaluate).

    python scripts/package_weights.py runs/next/fcfi-lite.safetensors \
        --dest runs/next/candidate.safetensors          # a candidate, next to the run
    python scripts/package_weights.py runs/next/fcfi-lite.safetensors   # ship it

Reads the run's final weights (``napari-fcfi train --out``, float32, with the run's
``training`` record) and writes them as float16 safetensors plus JSON to ``--dest``
(default: the shipped ``napari_fcfi/weights/fcfi-lite.safetensors``; another built-in
model is another name in that folder). From the JSON of the weights the run started from
(``--previous``, default the shipped weights) it keeps the description, the inference
defaults, the presets and the data notes, and it adds the run's CPU minutes to the total
behind the weights. ``--description`` gives a new model its own description (what the
model picker shows), ``--init-note`` says in words which weights the run started from and ``--no-presets``
leaves out presets that do not suit it. The
result is loaded back and compared with the float32 weights on a fixed input, so a file
that does not round-trip is never left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    from napari_fcfi.model.lite import BUILTIN_WEIGHTS, config_path, load_lite, save_lite

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_weights", help="the run's --out weights (*.safetensors)")
    p.add_argument("--dest", default=str(BUILTIN_WEIGHTS), help="where to write the fp16 weights")
    p.add_argument(
        "--previous",
        default=str(BUILTIN_WEIGHTS),
        help="the weights the run started from (their JSON gives the defaults and notes)",
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="max |logit| change from fp16")
    p.add_argument(
        "--description",
        default=None,
        help="what the model is for, in a few words (default: the --previous weights' own)",
    )
    p.add_argument(
        "--no-presets",
        action="store_true",
        help="leave out the --previous weights' presets (e.g. 'nuclei' for a model of cells)",
    )
    p.add_argument(
        "--init-note",
        default=None,
        help="which weights the run started from, in words (default: the previous shipped "
        "weights and their sample count)",
    )
    args = p.parse_args(argv)

    src, dest, prev = Path(args.run_weights), Path(args.dest), Path(args.previous)
    for f in (src, config_path(src), config_path(prev)):
        if not f.is_file():
            print(f"error: {f} not found", file=sys.stderr)
            return 2
    run_cfg = json.loads(config_path(src).read_text())
    prev_cfg = json.loads(config_path(prev).read_text())
    run = dict(run_cfg.get("training") or {})
    if "samples_total" not in run:
        print(f"error: {config_path(src)} has no training record", file=sys.stderr)
        return 2
    before = prev_cfg.get("training", {})
    if run["samples_total"] <= before.get("samples_total", 0):
        print(
            f"error: the run ({run['samples_total']} samples in all) does not continue "
            f"{prev} ({before.get('samples_total')} samples)",
            file=sys.stderr,
        )
        return 2

    model = load_lite(src)
    model.inference_defaults = dict(prev_cfg["inference_defaults"])
    presets = {} if args.no_presets else (prev_cfg.get("presets") or {})
    model.inference_presets = {k: dict(v) for k, v in presets.items()}
    run["init"] = args.init_note or (
        f"fcfi-lite (the previous shipped weights, {before.get('samples_total', 0):,} samples)"
    )
    minutes = before.get("cpu_minutes_total", 0) + run.get("wall_time_s", 0) / 60.0
    run["cpu_minutes_total"] = int(round(minutes))
    extra = {"training": run}
    description = args.description or prev_cfg.get("description")
    if description:
        extra["description"] = description
    if "data" in prev_cfg:
        extra["data"] = prev_cfg["data"]

    tmp = dest.with_name(dest.stem + ".tmp.safetensors")
    save_lite(model, tmp, half=True, extra=extra)
    err = _roundtrip_error(model, load_lite(tmp))
    if err > args.tolerance:
        tmp.unlink()
        config_path(tmp).unlink()
        print(f"error: fp16 changes the logits by up to {err:.4f}", file=sys.stderr)
        return 1
    config_path(tmp).replace(config_path(dest))
    tmp.replace(dest)
    size = dest.stat().st_size / 1e6
    print(
        f"{dest}: {size:.1f} MB fp16, {run['samples_total']:,} samples in all, "
        f"about {run['cpu_minutes_total']} CPU-minutes, max |logit| change {err:.4f}"
    )
    return 0


def _roundtrip_error(ref, half) -> float:
    """Largest logit difference between two networks on a fixed input and click."""
    import torch

    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 128, 128, generator=g)
    prev = torch.zeros(1, 1, 128, 128)
    pts = torch.tensor([[[64.0, 64.0, 0.0], [-1.0, -1.0, -1.0]]])
    new = pts[:, :1]
    with torch.no_grad():
        a = ref.eval()(img, prev, pts, new, 0.0)["instances"]
        b = half.eval()(img, prev, pts, new, 0.0)["instances"]
    return float((a - b).abs().max())


if __name__ == "__main__":
    sys.exit(main())
