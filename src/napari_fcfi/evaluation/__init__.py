"""Robot-user evaluation (NoC protocol of the FCFI / RITM papers) and classic baselines.

Imported lazily so that ``napari-fcfi --help`` stays instant.
"""

from __future__ import annotations

__all__ = ["next_click", "evaluate_instance", "summarize", "make_method"]


def __getattr__(name: str):
    if name == "next_click":
        from .clicker import next_click

        return next_click
    if name in ("evaluate_instance", "summarize", "make_method"):
        from . import robot

        return getattr(robot, name)
    raise AttributeError(f"module 'napari_fcfi.evaluation' has no attribute {name!r}")
