"""What defines the result of a refinement run, as comparable records ("fingerprints").

A run's result depends on the image, the labels, the model's weights and the options. The
work store of a run keeps their fingerprints, and a later run resumes that store only if
every fingerprint is the same (:func:`differences` says what is not).

* An input's fingerprint is its absolute path, total size, newest modification time,
  inode (for a single file), its shape and dtype, and a BLAKE2b hash of its full decoded content. The content is read
  once anyway, by :func:`scan_inputs`, to validate it before anything is written: labels
  must be readable ids >= 0, and the image slices to refine must be readable and finite.
* A model's fingerprint is the SHA-256 of its checkpoint file(s) (weights and JSON
  config), or of its tensors for a network given as an object.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .io import source_stats

_BLOCK = 1 << 20


def array_digest(arr: np.ndarray) -> str:
    """BLAKE2b (128 bit) of an array's dtype, shape and values (in native byte order)."""
    arr = np.asarray(arr)
    native = arr.dtype.newbyteorder("=")
    arr = np.ascontiguousarray(arr, dtype=native)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{native.str}{arr.shape}".encode())
    h.update(arr.reshape(-1).view(np.uint8))
    return h.hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def checkpoint_files(path) -> list[Path]:
    """The files a checkpoint is read from: ours is ``.safetensors`` plus ``.json``."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        pair = [path.with_suffix(".safetensors"), path.with_suffix(".json")]
        return [p for p in pair if p.exists()]
    return [path]


def model_fingerprint(source, net) -> dict:
    """Fingerprint of the network ``net`` loaded from ``source``.

    ``source`` is what the user named (``None`` for the built-in model, a name or a path),
    or a zero-argument callable building the network (scripting and tests).
    """
    path = getattr(net, "checkpoint_path", None)
    if path is not None and (source is None or isinstance(source, str | os.PathLike)):
        h = hashlib.sha256()
        for p in checkpoint_files(path):
            h.update(p.name.encode())
            h.update(bytes.fromhex(file_sha256(p)))
        return {
            "source": None if source is None else str(source),
            "path": str(path),
            "sha256": h.hexdigest(),
        }
    import torch

    h = hashlib.sha256(f"{type(net).__module__}.{type(net).__qualname__}".encode())
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    if source is None or isinstance(source, str | os.PathLike):
        label = None if source is None else str(source)
    else:
        name = getattr(source, "__qualname__", None) or type(source).__qualname__
        label = f"{getattr(source, '__module__', '')}.{name}"
    return {"source": label, "path": None, "sha256": h.hexdigest()}


def _scan_slice(image, labels, index, refine: bool, image_path, labels_path):
    """Read one slice of both inputs, validate it, return the digests of its content."""
    where = f"slice {list(index)}" if index else "the image"
    try:
        lab = np.asarray(labels[index])
    except Exception as exc:
        raise ValueError(f"cannot read {labels_path}: {where}: {_reason(exc)}") from None
    if lab.size and np.issubdtype(lab.dtype, np.signedinteger) and lab.min() < 0:
        raise ValueError(
            f"{labels_path}: {where} holds negative label ids (down to {int(lab.min())}); "
            "labels must be object ids >= 0"
        )
    try:
        img = np.asarray(image[index])
    except Exception as exc:
        raise ValueError(f"cannot read {image_path}: {where}: {_reason(exc)}") from None
    if refine and np.issubdtype(img.dtype, np.floating) and not np.isfinite(img).all():
        raise ValueError(
            f"{image_path}: {where} contains NaN or infinite values; replace them first"
        )
    return array_digest(img), array_digest(lab)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def scan_inputs(
    image,
    labels,
    indices,
    refine,
    *,
    image_path,
    labels_path,
    threads: int = 4,
    progress: bool = False,
) -> tuple[dict, dict]:
    """Validate every slice of ``image`` and ``labels`` and fingerprint both.

    ``indices`` are all 2-D slice indices, ``refine`` the set of those to refine (their
    image must be finite). Slices are read in a small thread pool, one slice per task, so
    memory stays at a few slices. Raises ``ValueError`` (one line, naming the file and the
    slice) for unreadable data, negative ids or non-finite image values. ``progress``
    shows a transient progress bar.
    """
    from tqdm import tqdm

    himg = hashlib.blake2b(digest_size=16)
    hlab = hashlib.blake2b(digest_size=16)
    bar = tqdm(
        total=len(indices), unit="slice", desc="check inputs", leave=False, disable=not progress
    )
    with bar, ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = [
            pool.submit(
                _scan_slice, image, labels, index, tuple(index) in refine, image_path, labels_path
            )
            for index in indices
        ]
        try:
            for fut in futures:
                dimg, dlab = fut.result()
                himg.update(dimg.encode())
                hlab.update(dlab.encode())
                bar.update()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return (
        _input_fingerprint(image_path, image, himg.hexdigest()),
        _input_fingerprint(labels_path, labels, hlab.hexdigest()),
    )


def _input_fingerprint(path, arr, digest: str) -> dict:
    return {
        **source_stats(path),
        "shape": [int(n) for n in arr.shape],
        "dtype": np.dtype(arr.dtype).str,
        "blake2b": digest,
    }


# ------------------------------------------------------------------ comparing two runs

_INPUT_FIELDS = {
    "path": "path",
    "shape": "shape",
    "dtype": "dtype",
    "size": "size",
    "files": "number of files",
    "mtime_ns": "modification time",
    "inode": "file (replaced)",
    "blake2b": "content",
}


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two run fingerprints (empty if the same)."""
    if not isinstance(old, dict) or old.get("format") != new.get("format"):
        return ["it was written by another version, which did not record its inputs"]
    diffs = []
    for name in ("image", "labels"):
        a, b = old.get(name) or {}, new[name]
        changed = [label for key, label in _INPUT_FIELDS.items() if a.get(key) != b.get(key)]
        if changed:
            diffs.append(f"{name} {b['path']}: {', '.join(changed)} differ")
    a, b = old.get("model") or {}, new["model"]
    if a.get("sha256") != b["sha256"] or a.get("source") != b["source"]:
        diffs.append(f"model {b['source'] or 'built-in'}: weights differ")
    a, b = old.get("options") or {}, new["options"]
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {_show(a.get(key))} then, {_show(b.get(key))} now")
    for key in ("shape", "dtype"):
        if old.get(key) != new.get(key):
            diffs.append(f"output {key}: {_show(old.get(key))} then, {_show(new.get(key))} now")
    return diffs


def _show(value) -> str:
    return "unset" if value is None else str(value)
