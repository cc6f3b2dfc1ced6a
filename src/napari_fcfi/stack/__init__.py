"""Whole-stack operations: batch refinement of label stacks (``refine``) and the CLI.

Imported lazily so that ``napari-fcfi --help`` stays instant::

    from napari_fcfi.stack import refine_labels
    refined, report = refine_labels(image, labels)
"""

from __future__ import annotations

__all__ = [
    "ObjectReport",
    "RefineCancelled",
    "RefineOptions",
    "iter_refine",
    "refine_labels",
    "refine_slice",
]


def __getattr__(name: str):
    if name == "RefineOptions":
        from .options import RefineOptions

        return RefineOptions
    if name in __all__:
        from . import refine

        return getattr(refine, name)
    raise AttributeError(f"module 'napari_fcfi.stack' has no attribute {name!r}")
