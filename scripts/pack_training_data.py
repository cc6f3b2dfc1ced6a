"""Pack the training split of an annotated set compactly, to carry it to a GPU machine, and
unpack it there into the folders that ``napari-fcfi train`` reads.

    python scripts/pack_training_data.py pack --images D/images --labels D/labels --dest P/dsb2018
    python scripts/pack_training_data.py unpack P/dsb2018 --dest /tmp/data/dsb2018

``pack`` keeps the images of the set's fixed training split only (the validation images,
chosen by :mod:`napari_fcfi.splits` from the folder's set name, stay behind). Each image is
stored as lossless WebP: 8-bit images as they are, other images (16-bit phase contrast,
float) mapped to 8 bits over their 0.01-99.99 % intensity range, finer than the 0.5-99.8 %
range that the network's input normalisation spreads over [0, 1]. Label images are stored
as deflate-compressed TIFF, unchanged. ``pack.json`` lists every image with its channels.

``unpack`` writes every image back as TIFF (a grey image as one channel: WebP stores it as
RGB) next to its labels, as ``DEST/images`` and ``DEST/labels``. The set's name stays the
last part of ``DEST``, so the trainer applies the same fixed split (and finds every image
in the training part).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image as 8 bits: 8-bit images unchanged, others over their 0.01-99.99 % range."""
    if image.dtype == np.uint8:
        return image
    lo, hi = np.percentile(image, [0.01, 99.99])
    scale = 255.0 / max(float(hi - lo), 1e-6)
    out = (image.astype(np.float32) - float(lo)) * scale + 0.5
    return np.clip(out, 0, 255).astype(np.uint8)


def pack(images: Path, labels: Path, dest: Path) -> dict:
    import tifffile
    from PIL import Image

    from napari_fcfi.splits import modulus_for, split_names
    from napari_fcfi.training.items import find_files, read_image

    imgs, labs = find_files(images), find_files(labels)
    missing = sorted(set(imgs) - set(labs))
    if missing:
        raise ValueError(f"no label image for {missing[0]} (and {len(missing) - 1} more)")
    train, _ = split_names(sorted(imgs), modulus_for(images))
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "labels").mkdir(exist_ok=True)
    entries = {}
    for name in train:
        image = read_image(imgs[name])
        if image.ndim == 3 and image.shape[-1] == 4:  # RGBA: the alpha carries no signal
            image = image[..., :3]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
            raise ValueError(f"{imgs[name]}: a 2-D grey or RGB image is needed, got {image.shape}")
        Image.fromarray(to_uint8(image)).save(
            dest / "images" / f"{name}.webp", lossless=True, quality=100, method=4
        )
        label = read_image(labs[name])
        if label.shape[:2] != image.shape[:2]:
            raise ValueError(f"{labs[name]}: shape {label.shape} does not match its image")
        tifffile.imwrite(dest / "labels" / f"{name}.tif", label, compression="zlib")
        entries[name] = {"channels": 1 if image.ndim == 2 else 3, "dtype": str(image.dtype)}
    info = {"source": str(images), "images": entries}
    (dest / "pack.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def unpack(pack_dir: Path, dest: Path) -> int:
    import tifffile
    from PIL import Image

    info = json.loads((pack_dir / "pack.json").read_text())
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "labels").mkdir(exist_ok=True)
    for name, entry in info["images"].items():
        image = np.asarray(Image.open(pack_dir / "images" / f"{name}.webp").convert("RGB"))
        if entry["channels"] == 1:
            image = image[..., 0]
        tifffile.imwrite(dest / "images" / f"{name}.tif", image)
        shutil.copyfile(pack_dir / "labels" / f"{name}.tif", dest / "labels" / f"{name}.tif")
    return len(info["images"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="pack a set's training split")
    a.add_argument("--images", type=Path, required=True)
    a.add_argument("--labels", type=Path, required=True)
    a.add_argument("--dest", type=Path, required=True)
    b = sub.add_parser("unpack", help="unpack into images/ and labels/ folders")
    b.add_argument("pack", type=Path)
    b.add_argument("--dest", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            info = pack(args.images, args.labels, args.dest)
            size = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
            print(f"packed {len(info['images'])} images into {args.dest} ({size / 2**20:.1f} MiB)")
        else:
            n = unpack(args.pack, args.dest)
            print(f"unpacked {n} images into {args.dest}")
    except (ValueError, OSError) as exc:
        print(f"pack_training_data: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
