"""The one place that picks and checks the torch device.

``pick_device(None)`` or ``pick_device("auto")`` gives CUDA if torch sees a GPU, then Apple
MPS, then the CPU. A named device is checked: asking for CUDA or MPS where it is not
available raises a ``ValueError`` that says what to choose instead.
"""

from __future__ import annotations

import torch

__all__ = ["DEVICES", "pick_device"]

#: The names the widget and the command lines offer.
DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def pick_device(device=None) -> torch.device:
    """``device`` (a name, ``"cuda:1"`` style index included, or a ``torch.device``) checked
    for availability; ``None`` or ``"auto"``: CUDA, then MPS, then CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; pick one of {DEVICES}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was chosen but torch sees no CUDA GPU; pick 'auto' or 'cpu'")
    if dev.type == "mps" and not _mps_available():
        raise ValueError("MPS was chosen but it is not available; pick 'auto' or 'cpu'")
    if dev.type not in DEVICES:
        raise ValueError(f"unknown device {device!r}; pick one of {DEVICES}")
    return dev
