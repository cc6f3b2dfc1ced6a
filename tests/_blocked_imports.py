"""Run a script in a fresh interpreter in which napari and every Qt binding cannot be
imported (the headless-import tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: top-level packages the script may not import
BLOCKED = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "magicgui", "npe2")

PREAMBLE = f"""
import importlib, pkgutil, sys

BLOCKED = {BLOCKED!r}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} may not be imported here")
        return None

sys.meta_path.insert(0, Blocker())
"""


def run_blocked(script: str) -> subprocess.CompletedProcess:
    """``PREAMBLE + script`` in a subprocess (one torch thread; the stand-in networks of
    ``tests/`` importable); returns the completed process."""
    tests = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, "-c", PREAMBLE + script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
