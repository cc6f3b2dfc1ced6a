"""The fixed train/validation splits of the training sets (DSB2018, Usiigaci) used for
training and benchmarks.

An image belongs to the validation split when the SHA-1 of its file stem (e.g.
``"00071198d059ba7f"``), read as a hexadecimal integer, is divisible by the set's modulus
(:data:`MODULUS`: 10 for DSB2018, about 10 % of the images; 8 for Usiigaci) --
independent of the images' order, of the machine and of any random seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

#: The fixed modulus of each known training set: DSB2018 holds out 1 image in 10 (65 of
#: 591); Usiigaci, with only 40 large images, 1 in 8 (6 images, 309 cells).
MODULUS = {"dsb2018": 10, "usiigaci": 8}


def is_validation(name: str | Path, modulus: int = 10) -> bool:
    """True when the image ``name`` (a file name, path or stem) is in the validation split:
    the SHA-1 of its stem, read as an integer, is divisible by ``modulus``."""
    if int(modulus) < 2:
        raise ValueError(f"modulus must be >= 2, got {modulus}")
    stem = Path(str(name)).name.split(".")[0]
    return int(hashlib.sha1(stem.encode("utf-8")).hexdigest(), 16) % int(modulus) == 0


def split_names(names: Iterable[str | Path], modulus: int = 10) -> tuple[list, list]:
    """Split ``names`` into (train, validation) lists, keeping their order."""
    train, val = [], []
    for n in names:
        (val if is_validation(n, modulus) else train).append(n)
    return train, val


def modulus_for(folder: str | Path) -> int:
    """The split modulus of a known data set from its folder path (``.../usiigaci/images``
    -> 8); 10 for anything else."""
    parts = [p.lower() for p in Path(str(folder)).resolve().parts]
    for name, mod in MODULUS.items():
        if name in parts:
            return mod
    return 10
