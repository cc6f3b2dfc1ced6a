"""The robot-user protocol's objects for the benchmarks that replay it per object: the
options (data folders, split, sample size, seed, JSON output) and the objects themselves,
the same ones ``napari-fcfi evaluate --max-instances N --seed S`` picks."""

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
