"""Training checkpoints: written atomically, read with ``weights_only`` (tensors and plain
containers only), with numpy's random state stored as plain values so that a resumed run
continues bit for bit."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


#: what every training checkpoint holds
CHECKPOINT_KEYS = ("model", "optimizer", "rng", "torch_rng", "step", "elapsed", "best")


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint, read with ``weights_only=True``: tensors and plain Python
    containers only, so a crafted file cannot run code (it is refused with a
    ``ValueError`` before anything in it runs)."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"refused to read the training checkpoint {path}: it holds Python objects other "
            "than tensors and plain containers (possibly code), which are never loaded; "
            "delete it (or choose another --workdir) to start the training afresh"
        ) from None
    except Exception as exc:  # noqa: BLE001 -- truncation, corruption, not a torch file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"cannot read the training checkpoint {path} ({first}); delete it (or choose "
            "another --workdir) to start the training afresh"
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ValueError(
            f"{path} is not a training checkpoint of this version (missing {missing}); "
            "delete it (or choose another --workdir) to start the training afresh"
        )
    return ck


def rng_state_to_plain(state: dict) -> dict:
    """numpy's bit-generator state with its 128-bit integers as strings (so that the
    checkpoint holds only types ``weights_only`` accepts)."""
    inner = {k: str(v) for k, v in state["state"].items()}
    return {
        "bit_generator": state["bit_generator"],
        "state": inner,
        "has_uint32": int(state["has_uint32"]),
        "uinteger": str(state["uinteger"]),
    }


def rng_state_from_plain(plain: dict) -> dict:
    return {
        "bit_generator": plain["bit_generator"],
        "state": {k: int(v) for k, v in plain["state"].items()},
        "has_uint32": int(plain["has_uint32"]),
        "uinteger": int(plain["uinteger"]),
    }
