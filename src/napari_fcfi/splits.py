"""The fixed train/validation split of the DSB2018 images used for training and benchmarks.

An image belongs to the validation split when the SHA-1 of its file stem (e.g.
``"00071198d059ba7f"``), read as a hexadecimal integer, is divisible by 10 -- about 10 % of
the images, independent of their order, of the machine and of any random seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def is_validation(name: str | Path) -> bool:
    """True when the image ``name`` (a file name, path or stem) is in the validation split."""
    stem = Path(str(name)).name.split(".")[0]
    return int(hashlib.sha1(stem.encode("utf-8")).hexdigest(), 16) % 10 == 0


def split_names(names: Iterable[str | Path]) -> tuple[list, list]:
    """Split ``names`` into (train, validation) lists, keeping their order."""
    train, val = [], []
    for n in names:
        (val if is_validation(n) else train).append(n)
    return train, val
