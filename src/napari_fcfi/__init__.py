"""napari-fcfi: click-based interactive segmentation with FCFI (CVPR 2023) in napari.

The public surface is small and imported lazily so that napari starts fast:

- :func:`load_model` -- build an FCFI network from the built-in weights, a checkpoint
  file or a registered name;
- :class:`Predictor` -- one click -> probability map (zoom-in, flip, feedback);
- :class:`InteractiveSession` -- clicks with exact undo/redo for one object.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_model", "Predictor", "InteractiveSession", "__version__"]


def __getattr__(name: str):
    if name == "load_model":
        from .model.io import load_model

        return load_model
    if name == "Predictor":
        from .inference.predictor import Predictor

        return Predictor
    if name == "InteractiveSession":
        from .inference.session import InteractiveSession

        return InteractiveSession
    raise AttributeError(f"module 'napari_fcfi' has no attribute {name!r}")
