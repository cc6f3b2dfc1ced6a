"""Lazy stack I/O for batch refinement: TIFF (through tifffile's zarr interface) and zarr.

Inputs are opened without reading pixels; a slice is read when it is indexed. The output
of a run is always first a zarr array chunked one 2-D slice per chunk (so that each
slice task writes exactly one chunk, from any process) with a small *completion record*
beside the chunks: one JSON file per finished slice holding that slice's object report.
A re-run skips the slices with a record (resume). A TIFF output is converted from that
zarr store at the end, then the store is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr", ".zr")
RECORD_DIR = ".napari-fcfi-refine"  # inside the output zarr array's directory
META_KEY = "napari_fcfi_refine"


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


@lru_cache(maxsize=8)
def _open_cached(path: str):
    return open_array(path)


def open_array(path, cached: bool = False):
    """Open a TIFF or zarr array lazily (a read-only ``zarr.Array``).

    Raises ``ValueError("cannot read PATH: reason")`` for anything unreadable.
    ``cached=True`` reuses an already opened array in this process (worker tasks).
    """
    if cached:
        return _open_cached(str(path))
    import zarr

    path = str(path)
    if not os.path.exists(path):
        raise ValueError(f"cannot read {path}: no such file or directory")
    kind = kind_of(path)
    try:
        if kind == "tiff":
            import tifffile

            store = tifffile.imread(path, aszarr=True)
            node = zarr.open(store, mode="r")
        else:
            node = zarr.open(path, mode="r")
        return _pick_array(node, path)
    except ValueError:
        raise
    except Exception as exc:  # tifffile/zarr raise many types for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot read {path}: {reason}") from None


# ----------------------------------------------------------------------- output store


def work_store_path(out) -> Path:
    """Where the zarr labels are written: ``out`` itself, or ``out + .partial.zarr``."""
    out = Path(out)
    return out if kind_of(out) == "zarr" else out.with_name(out.name + ".partial.zarr")


def slice_key(index) -> str:
    return "_".join(str(int(i)) for i in index) or "0"


def create_or_resume(work: Path, shape, dtype, meta: dict):
    """Create the chunked output array, or reopen it for a resume after checking ``meta``.

    Returns ``(array, done)`` with ``done`` the set of slice keys already recorded.
    """
    import zarr

    if work.exists():
        try:
            arr = zarr.open_array(str(work), mode="r+")
        except Exception:
            raise ValueError(
                f"{work} exists and is not a napari-fcfi refine output; remove it or "
                "choose another -o"
            ) from None
        old = dict(arr.attrs).get(META_KEY)
        if old is None:
            raise ValueError(
                f"{work} exists and is not a napari-fcfi refine output; remove it or "
                "choose another -o"
            )
        if (list(old["shape"]), old["dtype"]) != (list(meta["shape"]), meta["dtype"]):
            raise ValueError(
                f"{work} was written for shape {tuple(old['shape'])} {old['dtype']}, not "
                f"{tuple(meta['shape'])} {meta['dtype']}; remove it or choose another -o"
            )
        return arr, finished_slices(work)
    chunks = (1,) * (len(shape) - 2) + tuple(shape[-2:])
    arr = zarr.create_array(str(work), shape=tuple(shape), chunks=chunks, dtype=dtype, fill_value=0)
    arr.attrs[META_KEY] = meta
    (work / RECORD_DIR).mkdir()
    return arr, set()


def finished_slices(work: Path) -> set[str]:
    rec = Path(work) / RECORD_DIR
    if not rec.is_dir():
        return set()
    return {p.stem for p in rec.glob("*.json")}


def record_slice(work, index, rows: list[dict], refined: bool) -> None:
    """Atomically write the completion record of one slice (after its chunk is written)."""
    rec = Path(work) / RECORD_DIR
    key = slice_key(index)
    tmp = rec / f".{key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"slice": list(index), "refined": refined, "objects": rows}))
    os.replace(tmp, rec / f"{key}.json")


def read_records(work) -> list[dict]:
    """All slice records of a run, in slice order."""
    rec = Path(work) / RECORD_DIR
    out = [json.loads(p.read_text()) for p in rec.glob("*.json")]
    return sorted(out, key=lambda r: r["slice"])


def is_refined(work, key: str) -> bool:
    path = Path(work) / RECORD_DIR / f"{key}.json"
    return path.exists() and json.loads(path.read_text())["refined"]


def finalize(work: Path, out: Path) -> None:
    """Mark a zarr output complete, or convert the work store to ``out`` TIFF and remove it."""
    import tifffile
    import zarr

    arr = zarr.open_array(str(work), mode="r+")
    if Path(work) == Path(out):
        meta = dict(arr.attrs[META_KEY])
        meta["complete"] = True
        arr.attrs[META_KEY] = meta
        return
    shape = arr.shape
    lead = shape[:-2]
    pages = (np.asarray(arr[idx]) for idx in np.ndindex(*lead)) if lead else iter([arr[:]])
    tmp = out.with_name(f".{out.name}.tmp")
    nbytes = int(np.prod(shape)) * arr.dtype.itemsize
    tifffile.imwrite(
        tmp,
        pages,
        shape=shape,
        dtype=arr.dtype,
        bigtiff=nbytes > 2**31 - 2**25,
        photometric="minisblack",
    )
    os.replace(tmp, out)
    shutil.rmtree(work)
