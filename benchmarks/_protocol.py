"""The robot-user protocol's objects for the benchmarks that replay it per object: the
options (data folders, split, sample size, seed, JSON output) and the objects themselves,
the same ones ``napari-fcfi evaluate --max-instances N --seed S`` picks; for those that run
the robot user with a model, its options and the method object."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018" / "train"


def add_protocol_arguments(p) -> None:
    """The options that choose the objects (defaults: the DSB2018 validation split of the
    shared data folder, 300 objects, seed 0) and ``--json``."""
    p.add_argument("--images", type=Path, default=SHARED / "images")
    p.add_argument("--labels", type=Path, default=SHARED / "labels")
    p.add_argument("--split", default="val")
    p.add_argument("--max-instances", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)


def protocol_objects(args):
    """Per image holding chosen objects: ``(image path, label image, label ids)``, each
    label image read once."""
    from napari_fcfi.evaluation.cli import _read, list_instances, list_pairs

    pairs = list_pairs(args.images, args.labels, args.split)
    by_image: dict[int, list[int]] = {}
    for idx, label_id in list_instances(pairs, args.max_instances, args.seed):
        by_image.setdefault(idx, []).append(label_id)
    for idx, ids in by_image.items():
        yield pairs[idx][0], _read(pairs[idx][1]), ids


def add_method_arguments(p, threads: int = 1) -> None:
    """The model options of a robot-user benchmark: ``--model``, ``--preset``,
    ``--max-clicks`` (at least 1) and ``--threads`` (torch CPU threads)."""

    def clicks(value):
        n = int(value)
        if n < 1:
            raise ValueError
        return n

    p.add_argument("--model", default=None, help="a built-in model's name or weights")
    p.add_argument("--preset", default=None, help="the model's preset, e.g. nuclei")
    p.add_argument("--max-clicks", type=clicks, default=20)
    p.add_argument("--threads", type=int, default=threads)


def protocol_method(args, wrap=None):
    """``(FcfiMethod, network)``: the ``--model`` network (passed through ``wrap`` when
    given) behind a Predictor with ``--preset``, torch set to ``--threads``."""
    import torch

    from napari_fcfi.evaluation.robot import FcfiMethod
    from napari_fcfi.inference.predictor import Predictor
    from napari_fcfi.model.io import load_model

    torch.set_num_threads(args.threads)
    net = load_model(args.model)
    if wrap is not None:
        net = wrap(net)
    return FcfiMethod(Predictor(net, preset=args.preset)), net


def method_objects(args, method):
    """The protocol's objects as true masks, each image handed to ``method.start`` first."""
    from napari_fcfi.evaluation.cli import _read

    for image, labels, ids in protocol_objects(args):
        method.start(_read(image))
        for label_id in ids:
            yield labels == label_id
