"""The annotation editor runs without napari and without Qt."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_fcfi.annotation as annotation
from _blocked_imports import BLOCKED, run_blocked

PACKAGE = Path(annotation.__file__).parent

SCRIPT = """
import numpy as np
import napari_fcfi.annotation as pkg

for info in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(f"{pkg.__name__}.{info.name}")

from napari_fcfi.annotation.editor import AnnotationEditor
from napari_fcfi.annotation.predictors import PredictorCache, PredictorSettings
from napari_fcfi.annotation.store import ArrayLabelStore
from stubnet import StubNet

image = np.zeros((3, 32, 32), np.uint8)
image[..., :2, :2] = 255
store = ArrayLabelStore(np.zeros((3, 32, 32), np.uint32))
editor = AnnotationEditor(
    predictors=PredictorCache(model=StubNet()),
    settings=PredictorSettings(source="injected", device="cpu", zoom_in=False, flip=False),
)
editor.attach(store, lambda key: image[key], image.shape)
editor.click((1,), 16, 16)
editor.propagate((1,))
assert all(store.data[z, 16, 16] == 1 for z in range(3)), store.data.max()
loaded = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED or "._qt" in n)
assert not loaded, loaded
print("ok")
"""


def test_editor_imports_and_works_with_napari_and_qt_blocked():
    done = run_blocked(SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_no_module_of_the_package_imports_a_gui():
    """A static check as well, so that an import inside a function cannot slip through."""
    gui = BLOCKED + ("napari_fcfi._qt", "napari_fcfi._widget", "napari_fcfi._layers")
    relative = ("_qt", "_widget", "_layers", "_refine_widget")
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = (node.module or "").split(".")
                    assert not (node.level >= 2 and parts[0] in relative), (path.name, node.module)
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not any(name == g or name.startswith(g + ".") for g in gui), (
                    path.name,
                    name,
                )
