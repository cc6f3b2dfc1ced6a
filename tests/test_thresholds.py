"""The two binarisation thresholds (first click, corrections) and the model's presets.

The first click's answer of an object is binarised at ``threshold``; every answer with
feedback (later clicks, a click on an existing label) at ``correction_threshold``. A model
carries named presets over its inference defaults (the built-in one: ``nuclei``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _annotation_helpers import dark_image, make_editor
from napari_fcfi.annotation.predictors import builtin_thresholds
from napari_fcfi.evaluation.robot import FcfiMethod, evaluate_instance
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.inference.session import InteractiveSession
from napari_fcfi.model.catalogue import builtin_config
from stubnet import SoftStub


def stub_with_presets():
    net = SoftStub()
    net.inference_presets = {
        "nuclei": {"correction_threshold": 0.3},
        "odd": {"threshold": 2},
        "typo": {"corection_threshold": 0.3},
    }
    return net


def test_presets_set_the_correction_threshold_and_explicit_values_win():
    plain = Predictor(stub_with_presets(), device="cpu")
    assert plain.threshold == 0.49 and plain.threshold_for(False) == 0.49
    assert plain.preset is None
    nuclei = Predictor(stub_with_presets(), device="cpu", preset="nuclei")
    assert nuclei.threshold_for(True) == 0.49 and nuclei.threshold_for(False) == 0.3
    mine = Predictor(stub_with_presets(), device="cpu", preset="nuclei", correction_threshold=0.4)
    assert mine.threshold_for(False) == 0.4


def test_unknown_or_broken_presets_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown preset 'cells'.*nuclei, odd, typo"):
        Predictor(stub_with_presets(), device="cpu", preset="cells")
    with pytest.raises(ValueError, match=r"unknown preset 'nuclei'.*none"):
        Predictor(SoftStub(), device="cpu", preset="nuclei")
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\].*preset 'odd'"):
        Predictor(stub_with_presets(), device="cpu", preset="odd")
    with pytest.raises(ValueError, match=r"preset 'typo' sets unknown settings \['corection"):
        Predictor(stub_with_presets(), device="cpu", preset="typo")
    with pytest.raises(ValueError, match="correction_threshold must lie"):
        Predictor(SoftStub(), device="cpu", correction_threshold=-0.1)


def test_the_session_binarises_the_first_answer_and_the_corrections_apart():
    img = dark_image((64, 80))
    pred = Predictor(stub_with_presets(), device="cpu", zoom_in=False, flip=False)
    pred.correction_threshold = 0.3
    s = InteractiveSession(pred, img)
    s.click(30, 40, True)
    first = s.mask.sum()
    assert 40 < first < 200  # the click disk only (~0.84 > 0.49 > ~0.32)
    s.click(10, 10, False)
    assert s.mask.sum() > 10 * first  # feedback answer at 0.3: the background joins
    s.undo()
    assert s.mask.sum() == first  # the first answer is read at the first threshold again
    pred.correction_threshold = None
    s.redo()
    assert s.mask.sum() < 4 * first


def test_a_click_on_an_existing_label_is_a_correction():
    img = dark_image((64, 80))
    pred = Predictor(SoftStub(), device="cpu", zoom_in=False, flip=False, threshold=0.99)
    start = np.zeros(img.shape, bool)
    start[25:35, 35:45] = True
    s = InteractiveSession(pred, img, feedback=start)
    s.click(30, 40, True)
    assert not s.mask.any()  # nothing reaches 0.99
    pred.correction_threshold = 0.5
    assert s.mask.any()  # the answer had feedback: read at the correction threshold


def test_a_propagation_prior_is_not_a_correction():
    """A session that starts from a neighbouring plane's mask (``prior=True``) reads its
    first answer at the first-click threshold; a later click and a hand edit are
    corrections again, and a reset starts from the prior once more."""
    img = dark_image((64, 80))
    pred = Predictor(SoftStub(), device="cpu", zoom_in=False, flip=False, threshold=0.99)
    pred.correction_threshold = 0.5
    start = np.zeros(img.shape, bool)
    start[25:35, 35:45] = True
    s = InteractiveSession(pred, img, feedback=start, prior=True)
    s.click(30, 40, True)
    assert not s.mask.any()  # the first answer: read at 0.99
    s.click(10, 10, False)
    assert s.mask.any()  # a later click: read at 0.5
    s.set_feedback(start)
    s.click(30, 40, True)
    assert s.mask.any()  # after a hand edit: a correction
    s.reset()
    s.click(30, 40, True)
    assert not s.mask.any()  # from the prior again: a first answer


class ConstantMethod:
    """Answers 0.4 on the object and 0 elsewhere, whatever the clicks."""

    def __init__(self, gt, thresholds=None):
        self.gt, self.thresholds = gt, thresholds
        if thresholds is not None:
            self.threshold_for = lambda first: thresholds[0] if first else thresholds[1]

    def start_object(self):
        pass

    def predict(self, clicks, prev=None):
        return np.where(self.gt, 0.4, 0.0).astype(np.float32)


def test_the_robot_reads_each_answer_at_the_methods_threshold():
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    ious, _ = evaluate_instance(ConstantMethod(gt, (0.49, 0.35)), gt, max_clicks=3)
    np.testing.assert_allclose(ious, [0.0, 1.0, 1.0])
    ious, _ = evaluate_instance(ConstantMethod(gt), gt, max_clicks=2)  # no thresholds: 0.49
    np.testing.assert_allclose(ious, [0.0, 0.0])
    ious, _ = evaluate_instance(ConstantMethod(gt, (0.49, 0.35)), gt, 2, threshold=0.3)
    np.testing.assert_allclose(ious, [1.0, 1.0])


def test_fcfi_method_follows_its_predictor():
    pred = Predictor(stub_with_presets(), device="cpu", preset="nuclei")
    method = FcfiMethod(pred)
    assert method.threshold_for(True) == 0.49 and method.threshold_for(False) == 0.3


def test_editor_redraws_with_the_threshold_of_each_answer():
    editor, store = make_editor(dark_image((64, 80)), model=SoftStub())
    editor.click((), 30, 40)
    area = (store.data == 1).sum()
    editor.set_threshold(0.49, (), correction_threshold=0.2)
    assert (store.data == 1).sum() == area  # one click: the first answer's threshold
    assert editor.correction_threshold == 0.2
    editor.click((), 5, 5, False)
    assert (store.data == 1).sum() > 10 * area
    editor.set_threshold(0.49, ())  # corrections follow the threshold again
    assert editor.correction_threshold == 0.49
    assert (store.data == 1).sum() < 4 * area
    with pytest.raises(ValueError, match="correction_threshold must lie"):
        editor.set_threshold(0.49, (), correction_threshold=1.5)


def test_the_builtin_model_ships_its_correction_threshold_and_a_nuclei_preset():
    cfg = builtin_config()
    assert set(cfg["presets"]) == {"nuclei"}
    presets = builtin_thresholds()
    first, any_corrections = presets["any"]
    assert first == 0.49 and any_corrections == cfg["inference_defaults"]["correction_threshold"]
    nuclei_first, corrections = presets["nuclei"]
    assert nuclei_first == 0.49 and corrections < any_corrections < first
    from napari_fcfi.model.io import load_model

    model = load_model(None, device="cpu")
    assert Predictor(model, device="cpu").threshold_for(False) == any_corrections
    pred = Predictor(model, device="cpu", preset="nuclei")
    assert pred.threshold_for(True) == first and pred.threshold_for(False) == corrections


def test_presets_survive_a_save_and_load(tmp_path):
    from napari_fcfi.model.io import CheckpointError
    from napari_fcfi.model.lite import FCFILite, load_lite, save_lite

    net = FCFILite(fpn_channels=8, feature_channels=16, ffcm_channels=8, cffm_channels=8)
    net.inference_presets = {"nuclei": {"correction_threshold": 0.35}}
    save_lite(net, tmp_path / "m.safetensors")
    back = load_lite(tmp_path / "m.safetensors")
    assert back.inference_presets == {"nuclei": {"correction_threshold": 0.35}}
    cfg = json.loads((tmp_path / "m.json").read_text())
    cfg["presets"] = {"nuclei": {"correction_threshold": [0.3]}}
    with pytest.raises(CheckpointError, match="presets"):
        FCFILite.from_config(cfg)


def test_the_model_of_cells_reads_its_first_click_at_its_own_threshold():
    """fcfi-lite-cells binarises its first answer at 0.45 (chosen on the cells' validation
    split), its corrections at 0.42; the widget and a plain Predictor both follow it."""
    assert builtin_thresholds("fcfi-lite-cells") == {"any": (0.45, 0.42)}
    from napari_fcfi.model.io import load_model

    pred = Predictor(load_model("fcfi-lite-cells", device="cpu"), device="cpu")
    assert pred.threshold_for(True) == 0.45 and pred.threshold_for(False) == 0.42
