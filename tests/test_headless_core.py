"""The core installs and runs without napari and without Qt: a headless machine or a dask
worker gets the engine, evaluation, training and batch refinement with no GUI packages."""

from __future__ import annotations

from pathlib import Path

import tomllib

from _blocked_imports import run_blocked

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = ("_qt", "_widget", "_layers", "_refine_widget", "napari")

SCRIPT = f"""
import numpy as np
import napari_fcfi

gui = {GUI_MODULES!r}

def walk(pkg):
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        if info.name.split(".")[1] in gui:
            continue
        mod = importlib.import_module(info.name)
        if info.ispkg:
            walk(mod)

walk(napari_fcfi)

from napari_fcfi.cli import main
from napari_fcfi.stack.refine import refine_labels
from napari_fcfi.inference.predictor import Predictor
from stubnet import StubNet

labels = np.zeros((2, 48, 48), np.uint16)
labels[:, 10:30, 10:30] = 1
image = (labels * 200).astype(np.uint8)
out, report = refine_labels(image, labels, Predictor(StubNet(), device="cpu"))
assert out.shape == labels.shape and len(report) == 2, report
# a GUI command says how to get the GUI instead of a traceback
code = main(["annotate", "--sample", "nuclei2d"])
assert code == 2, code
loaded = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED or "._qt" in n)
assert not loaded, loaded
print("ok")
"""


def test_core_imports_and_refines_with_napari_and_qt_blocked():
    done = run_blocked(SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
    assert "pip install 'napari-fcfi[all]'" in done.stderr


def test_core_dependencies_carry_no_gui_and_all_brings_napari_with_pyqt6():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("napari", "qt", "pyside", "magicgui", "npe2"):
        assert name not in core, name
    extras = project["optional-dependencies"]
    assert any(d.startswith("napari[pyqt6]") for d in extras["all"])
    assert not any("pyqt5" in d.lower() for deps in extras.values() for d in deps)
