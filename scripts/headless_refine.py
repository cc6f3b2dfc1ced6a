"""Run ``napari-fcfi refine`` on a small synthetic stack with the core install only.

Used by the packaging check (tox -e package): the wheel is installed without napari or Qt,
and refinement must still work, as it does on a headless dask worker. Exit 0 on success.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6")


def main() -> int:
    import importlib.util

    present = [name for name in GUI if importlib.util.find_spec(name) is not None]
    if present:
        print(f"GUI packages in the core install: {present}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    labels = np.zeros((2, 96, 96), np.uint16)
    for k, (cy, cx) in enumerate([(30, 30), (60, 64)], start=1):
        labels[:, (yy - cy) ** 2 + (xx - cx) ** 2 <= 14**2] = k
    image = (labels > 0) * 180 + rng.normal(30, 8, labels.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tifffile.imwrite(tmp / "image.tif", image)
        tifffile.imwrite(tmp / "labels.tif", labels)
        cmd = [
            str(Path(sys.executable).with_name("napari-fcfi")),
            "refine",
            str(tmp / "image.tif"),
            str(tmp / "labels.tif"),
            "-o",
            str(tmp / "out.tif"),
            "--workers",
            "1",
            "--threads",
            "1",
            "--quiet",
        ]
        subprocess.run(cmd, check=True)
        out = tifffile.imread(tmp / "out.tif")
        assert out.shape == labels.shape and set(np.unique(out)) == {0, 1, 2}, np.unique(out)
    print("headless refine: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
