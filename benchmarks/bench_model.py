"""Milliseconds per forward pass of each FCFI backbone on the CPU.

Batch 1, one click, gate 1 (every path runs), ``torch.inference_mode``; the median of
``--repeats`` timed runs after ``--warmup`` untimed ones, with ``--threads`` intra-op threads.
Besides wall-clock times it reports the process CPU time per pass, which is less affected by
other jobs on a shared machine (uncontended, wall ~= CPU / threads).
The official-architecture models (h18s, r101) use formula-W1 weights (the timing does not
depend on the values); the Lite model uses its untrained initialisation.

    python benchmarks/bench_model.py --sizes 400 800 --repeats 10 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build(name: str) -> torch.nn.Module:
    from _testnets import apply_w1

    if name == "h18s":
        from napari_fcfi.model.hrnet_model import HRNetModel

        return apply_w1(HRNetModel())
    if name == "r101":
        from napari_fcfi.model.deeplab import DeeplabModel

        return apply_w1(DeeplabModel(aspp_dropout=0.2))
    if name == "lite":
        from napari_fcfi.model.lite import FCFILite

        return FCFILite()
    raise ValueError(f"unknown model {name!r}")


def prepare(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    model = model.eval()
    if hasattr(model, "channels_last"):  # the HRNet wrapper's NHWC-activation switch
        model.channels_last = channels_last
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=fmt)


def time_forward(model, size: int, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU milliseconds of each timed forward pass."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=g)
    prev = torch.zeros(1, 1, size, size)
    c = size // 2
    points = torch.tensor([[[c, c, 0], [-1, -1, -1]]], dtype=torch.float32)
    new_points = torch.tensor([[[c, c, 1]]])
    wall, cpu = [], []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            model(image, prev, points, new_points, 1.0)
            if i >= warmup:
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def official_proxy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy that computes like the official code: contiguous (NCHW) activations and the
    FFCM encoder run on the whole feature map instead of the focus box plus its margin."""
    import copy

    proxy = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    for mod in proxy.modules():
        if hasattr(mod, "receptive_margin"):
            mod.receptive_margin = 10**9
    proxy.channels_last = False
    return proxy


def compare_with_proxy(name: str, size: int, repeats: int, warmup: int) -> None:
    """Interleaved runs of ours and the official-style proxy (fair under a varying load)."""
    ours = prepare(build(name), True)
    proxy = official_proxy(ours)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=g)
    prev = torch.zeros(1, 1, size, size)
    c = size // 2
    points = torch.tensor([[[c, c, 0], [-1, -1, -1]]], dtype=torch.float32)
    new_points = torch.tensor([[[c, c, 1]]])
    res = {"ours": ([], []), "official-style": ([], [])}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for key, model in (("ours", ours), ("official-style", proxy)):
                t0, c0 = time.perf_counter(), time.process_time()
                model(image, prev, points, new_points, 1.0)
                if i >= warmup:
                    res[key][0].append((time.perf_counter() - t0) * 1000)
                    res[key][1].append((time.process_time() - c0) * 1000)
    for key, (wall, cpu) in res.items():
        print(
            f"| {name} | {size}x{size} | {key} | {statistics.median(wall):.0f} | {min(wall):.0f} "
            f"| {max(wall):.0f} | {statistics.median(cpu):.0f} |",
            flush=True,
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["h18s", "r101", "lite"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[400, 800])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--memory-format",
        choices=["channels_last", "contiguous", "both"],
        default="channels_last",
    )
    ap.add_argument(
        "--compare-official-proxy",
        action="store_true",
        help="instead: interleave ours with an official-style copy (NCHW, whole-map FFCM); "
        "h18s only",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    formats = (
        ["channels_last", "contiguous"] if args.memory_format == "both" else [args.memory_format]
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1")
    if args.compare_official_proxy:
        print("| model | size | variant | median ms | min ms | max ms | median CPU ms |")
        print("|---|---|---|---|---|---|---|")
        for size in args.sizes:
            compare_with_proxy("h18s", size, args.repeats, args.warmup)
        return
    print("| model | size | memory format | median ms | min ms | max ms | median CPU ms |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        try:
            base = build(name)
        except (ImportError, AttributeError) as exc:
            print(f"| {name} | - | - | unavailable: {exc} | | | |")
            continue
        for fmt in formats:
            model = prepare(base, fmt == "channels_last")
            for size in args.sizes:
                t, c = time_forward(model, size, args.repeats, args.warmup)
                print(
                    f"| {name} | {size}x{size} | {fmt} | {statistics.median(t):.0f} "
                    f"| {min(t):.0f} | {max(t):.0f} | {statistics.median(c):.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
