"""Finished work on disk: labels saved atomically, restored after a crash.

:func:`save_labels` writes the whole label image to a temporary file next to the target,
flushes it to disk and renames it over the target, so the file on disk is always either
the previous complete save or the new complete one, never a torn write, whatever happens
to the process. :func:`load_labels` reads it back. TIFF (``.tif``/``.tiff``) only: it
opens in napari, Fiji and every analysis tool.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["check_path", "load_labels", "save_labels"]

SUFFIXES = (".tif", ".tiff")


def check_path(path) -> Path:
    """``path`` as a Path if labels can be saved there, else ``ValueError`` saying why."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"labels file {path}: use a .tif or .tiff name")
    if path.exists() and not path.is_file():
        raise ValueError(f"labels file {path} exists and is not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"labels file {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"labels file {path}: the folder {parent} is not writable")
    return path


def save_labels(path, labels) -> Path:
    """Write ``labels`` (an integer array) to ``path`` atomically; returns the path."""
    import tifffile

    path = check_path(path)
    data = np.asarray(labels)
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise ValueError(f"labels must be an integer array, got {data.dtype}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        tifffile.imwrite(tmp, data, compression="zlib")
        with open(tmp, "rb+") as fh:  # on disk before the rename makes it the file
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return path
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)
    return path


def load_labels(path) -> np.ndarray:
    """The label image saved at ``path`` (``ValueError`` if it is not an integer image)."""
    import tifffile

    path = Path(path)
    try:
        data = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several types for a bad file
        raise ValueError(f"cannot read labels file {path}: {exc}") from None
    if not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"labels file {path} holds {data.dtype} values, not integer ids")
    return data
