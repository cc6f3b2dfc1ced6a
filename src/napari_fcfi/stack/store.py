"""The work store of a refinement run: a zarr array plus one completion record per slice.

The store is chunked one 2-D slice per chunk, so that each slice task writes exactly one
chunk, from any process. Its attributes hold the run's fingerprint (inputs, model,
options; :mod:`napari_fcfi.stack.fingerprint`); a run resumes a store only if the
fingerprints are equal. Beside the chunks, one JSON *completion record* per finished slice
holds that slice's object report and a hash of the slice as written. A record that cannot
be read, or whose slice no longer has that hash (a chunk lost or overwritten), does not
count: the slice is computed again.

A zarr output *is* its work store; a TIFF output is converted from ``OUT.partial.zarr`` at
the end, then the work store is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .fingerprint import array_digest, differences
from .io import kind_of

RECORD_DIR = ".napari-fcfi-refine"  # inside the work store's directory
META_KEY = "napari_fcfi_refine"
FORMAT = 2  # version of the fingerprint layout in META_KEY


def work_store_path(out) -> Path:
    """Where the zarr labels are written: ``out`` itself, or ``out + .partial.zarr``."""
    out = Path(out)
    return out if kind_of(out) == "zarr" else out.with_name(out.name + ".partial.zarr")


def slice_key(index) -> str:
    return "_".join(str(int(i)) for i in index) or "0"


def _not_ours(work) -> ValueError:
    return ValueError(
        f"{work} exists and is not a napari-fcfi refine output; remove it yourself or choose "
        "another -o"
    )


def stored_fingerprint(work) -> dict:
    """The fingerprint a work store was created with (``complete`` flag removed)."""
    import zarr

    try:
        meta = dict(zarr.open_array(str(work), mode="r").attrs).get(META_KEY)
    except Exception:
        meta = None
    if not isinstance(meta, dict):
        raise _not_ours(work)
    return {k: v for k, v in meta.items() if k != "complete"}


def check_resumable(work, fingerprint: dict, overwrite: bool = False) -> str:
    """What opening ``work`` will do: ``"create"``, ``"resume"`` or ``"overwrite"``.

    Reads only. Raises ``ValueError`` (saying what differs and how to start afresh) when
    ``work`` holds a run with other inputs, model or options and ``overwrite`` is false,
    and whenever ``work`` is something other than a refine work store.
    """
    work = Path(work)
    if not work.exists():
        return "create"
    old = stored_fingerprint(work)
    if overwrite:
        return "overwrite"
    diffs = differences(old, _plain(fingerprint))
    if diffs:
        raise ValueError(
            f"{work} holds a run with other inputs or options ({'; '.join(diffs)}); run "
            "again with --overwrite to discard it and start afresh, or choose another -o"
        )
    return "resume"


def _plain(obj):
    """``obj`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def open_store(work, shape, dtype, fingerprint: dict, overwrite: bool = False):
    """Create the chunked work array, or reopen it to resume; returns the ``zarr.Array``.

    ``overwrite`` discards an existing run first (only a refine work store is ever
    removed). See :func:`check_resumable` for the rules.
    """
    import zarr

    work = Path(work)
    action = check_resumable(work, fingerprint, overwrite)
    if action == "resume":
        arr = zarr.open_array(str(work), mode="r+")
        (work / RECORD_DIR).mkdir(exist_ok=True)
        return arr
    if action == "overwrite":
        shutil.rmtree(work)
    chunks = (1,) * (len(shape) - 2) + tuple(shape[-2:])
    arr = zarr.create_array(
        str(work), shape=tuple(shape), chunks=chunks, dtype=np.dtype(dtype), fill_value=0
    )
    arr.attrs[META_KEY] = {**_plain(fingerprint), "complete": False}
    (work / RECORD_DIR).mkdir()
    return arr


def set_complete(work, complete: bool) -> None:
    import zarr

    arr = zarr.open_array(str(work), mode="r+")
    meta = dict(arr.attrs[META_KEY])
    if meta.get("complete") != complete:
        meta["complete"] = complete
        arr.attrs[META_KEY] = meta


# ------------------------------------------------------------------ completion records


def record_slice(work, index, rows: list[dict], refined: bool, digest: str) -> None:
    """Atomically write the completion record of one slice (after its chunk is written).

    ``digest`` is :func:`~napari_fcfi.stack.fingerprint.array_digest` of the slice as
    written.
    """
    rec = Path(work) / RECORD_DIR
    key = slice_key(index)
    tmp = rec / f".{key}.{os.getpid()}.tmp"
    record = {"slice": [int(i) for i in index], "refined": bool(refined), "digest": digest}
    tmp.write_text(json.dumps({**record, "objects": rows}))
    os.replace(tmp, rec / f"{key}.json")


def _read_record(path: Path, index) -> dict | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (
        isinstance(rec, dict)
        and rec.get("slice") == [int(i) for i in index]
        and isinstance(rec.get("refined"), bool)
        and isinstance(rec.get("digest"), str)
        and isinstance(rec.get("objects"), list)
        and all(isinstance(row, dict) for row in rec["objects"])
    ):
        return None
    return rec


def valid_records(work, indices) -> dict[tuple, dict]:
    """The completion records that still hold, by slice index; the others are removed.

    A record holds if it parses, names its slice, and the slice in the store still has
    the hash the record was written with (so a missing or overwritten chunk is redone,
    never reported as finished).
    """
    import zarr

    rec_dir = Path(work) / RECORD_DIR
    if not rec_dir.is_dir():
        return {}
    arr = zarr.open_array(str(work), mode="r")
    present = {p.stem for p in rec_dir.glob("*.json")}
    good = {}
    for index in indices:
        index = tuple(int(i) for i in index)
        key = slice_key(index)
        if key not in present:
            continue
        path = rec_dir / f"{key}.json"
        rec = _read_record(path, index)
        if rec is not None:
            try:
                ok = array_digest(np.asarray(arr[index])) == rec["digest"]
            except Exception:  # an unreadable chunk: the slice is redone and rewritten
                ok = False
            if ok:
                good[index] = rec
                continue
        path.unlink(missing_ok=True)
    return good


# ------------------------------------------------------------------------- finishing


def finalize(work, out) -> None:
    """Mark a zarr output complete, or convert the work store to ``out`` TIFF and remove it."""
    import tifffile
    import zarr

    work, out = Path(work), Path(out)
    if work == out:
        set_complete(work, True)
        return
    arr = zarr.open_array(str(work), mode="r")
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
