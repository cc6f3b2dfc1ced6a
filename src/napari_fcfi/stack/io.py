"""Lazy input arrays for batch refinement: TIFF (through tifffile's zarr interface) and zarr.

Inputs are opened without reading pixels; a slice is read when it is indexed. Nothing is
cached here: a process that keeps arrays open between tasks does so in an object whose
cache is keyed by the file's identity (see :mod:`napari_fcfi.stack.worker`).
"""

from __future__ import annotations

import os
from pathlib import Path

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr", ".zr")


def kind_of(path) -> str:
    """``"tiff"`` or ``"zarr"`` from the file name; ValueError otherwise."""
    name = str(path).rstrip("/\\").lower()
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(ZARR_SUFFIXES) or (Path(path) / "zarr.json").exists():
        return "zarr"
    if (Path(path) / ".zarray").exists() or (Path(path) / ".zgroup").exists():
        return "zarr"
    raise ValueError(f"{path}: unsupported format; use a .tif/.tiff file or a .zarr store")


def _pick_array(node, path):
    import zarr

    if isinstance(node, zarr.Array):
        return node
    # a group: OME-Zarr style level "0", or its only array
    arrays = dict(node.arrays())
    if "0" in arrays:
        return arrays["0"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise ValueError(
        f"{path}: zarr group with arrays {sorted(arrays)}; point to one array (path/name)"
    )


def open_levels(path) -> list:
    """The resolution levels of a zarr image, full resolution first, opened lazily.

    An OME-Zarr multiscale group gives its datasets in the order of its ``multiscales``
    metadata (OME-NGFF 0.4, or 0.5 under ``ome``); any other zarr array or group gives the
    one array :func:`open_array` picks. ``ValueError`` for anything unreadable."""
    import zarr

    path = str(path)
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:
        raise ValueError(f"cannot read {path}: {_reason(exc)}") from None
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if multiscales:
            arrays = dict(node.arrays())
            paths = [d["path"] for d in multiscales[0].get("datasets", [])]
            levels = [arrays[p] for p in paths if p in arrays]
            if levels:
                return levels
    return [open_array(path)]


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def open_array(path):
    """Open a TIFF or zarr array lazily (a read-only ``zarr.Array``).

    Raises ``ValueError("cannot read PATH: reason")`` for anything unreadable, including a
    TIFF file whose image data ends beyond the end of the file (a truncated copy).
    """
    import zarr

    path = str(path)
    if not os.path.exists(path):
        raise ValueError(f"cannot read {path}: no such file or directory")
    kind = kind_of(path)
    try:
        if kind == "tiff":
            import tifffile

            check_tiff_complete(path)
            store = tifffile.imread(path, aszarr=True)
            node = zarr.open(store, mode="r")
        else:
            node = zarr.open(path, mode="r")
        return _pick_array(node, path)
    except ValueError as exc:
        if str(exc).startswith(("cannot read", path)):
            raise
        raise ValueError(f"cannot read {path}: {_reason(exc)}") from None
    except Exception as exc:  # tifffile/zarr raise many types for corrupt files
        raise ValueError(f"cannot read {path}: {_reason(exc)}") from None


def check_tiff_complete(path) -> None:
    """ValueError if the image data of the TIFF's first series lies beyond the file's end.

    A copy cut short keeps its header, so it opens; reading its missing pages would then
    fail mid-run or, for pages whose directory is gone, silently give zeros.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        size = tif.filehandle.size
        if not tif.series:
            raise ValueError(f"cannot read {path}: no image in the file")
        series = tif.series[0]
        offset = series.dataoffset
        if offset is not None:  # contiguous, uncompressed data
            if offset + series.nbytes > size:
                raise ValueError(
                    f"cannot read {path}: the file is truncated (its image data needs "
                    f"{offset + series.nbytes} bytes, the file has {size})"
                )
            return
        for number, page in enumerate(series):
            if page is None:
                raise ValueError(f"cannot read {path}: page {number} is missing (truncated file)")
            for off, count in zip(page.dataoffsets, page.databytecounts):
                if off and count and off + count > size:
                    raise ValueError(
                        f"cannot read {path}: the file is truncated (page {number} ends at "
                        f"byte {off + count}, the file has {size})"
                    )


def source_stats(path) -> dict:
    """``path`` (absolute), total ``size`` in bytes, newest ``mtime_ns``, ``files``, ``inode``.

    For a zarr directory store these cover every file below it, so rewriting one chunk
    changes them (``inode`` is then 0). A file replaced by another one, as editors and
    copies do, has a new inode even when its size and time stamp look the same.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        size = files = mtime = 0
        for root, _dirs, names in os.walk(path):
            for name in names:
                st = os.stat(os.path.join(root, name))
                size += st.st_size
                files += 1
                mtime = max(mtime, st.st_mtime_ns)
        return {"path": path, "size": size, "mtime_ns": mtime, "files": files, "inode": 0}
    st = os.stat(path)
    return {
        "path": path,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "files": 1,
        "inode": st.st_ino,
    }
