"""Choosing a built-in model by name: the interactive widget's model picker, the annotate
command and the refine widget use the chosen model's weights and its validated thresholds.

A temporary weights folder holds the default model and a second model, ``other`` (the same
network with other thresholds and a ``cells`` preset instead of ``nuclei``), so that these
checks do not depend on which models ship.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_fcfi.model import catalogue
from napari_fcfi.model import io as mio
from napari_fcfi.model.catalogue import DEFAULT_MODEL, WEIGHTS_DIR, builtin_config


@pytest.fixture
def two_models(tmp_path, monkeypatch):
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"{DEFAULT_MODEL}{suffix}").symlink_to(WEIGHTS_DIR / f"{DEFAULT_MODEL}{suffix}")
    (tmp_path / "other.safetensors").symlink_to(WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors")
    cfg = builtin_config()
    cfg["description"] = "test cells"
    cfg["inference_defaults"]["correction_threshold"] = 0.45
    cfg["presets"] = {"cells": {"correction_threshold": 0.3}}
    (tmp_path / "other.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(catalogue, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(mio, "WEIGHTS_DIR", tmp_path)
    return tmp_path


@pytest.fixture
def viewer2d(make_napari_viewer):
    viewer = make_napari_viewer()
    img = np.zeros((64, 80), dtype=np.uint8)
    img[20:40, 30:50] = 200
    viewer.add_image(img, name="img")
    return viewer


def _kinds(combo):
    return [combo.itemData(i) for i in range(combo.count())]


def test_the_model_picker_lists_each_builtin_model_with_its_own_thresholds(viewer2d, two_models):
    from napari_fcfi._qt.settings_panel import CHECKPOINT
    from napari_fcfi._widget import FCFIWidget

    w = FCFIWidget(viewer2d)
    viewer2d.window.add_dock_widget(w)
    w.device_combo.setCurrentText("cpu")
    items = [w.model_combo.itemText(i) for i in range(w.model_combo.count())]
    assert items[0].startswith(f"Built-in: {DEFAULT_MODEL} (")
    assert items[1:] == ["Built-in: other (test cells)", CHECKPOINT]
    assert w.panel.predictor_settings().source is None
    assert _kinds(w.objects_combo) == ["any", "nuclei"]
    w.panel.set_objects("nuclei")
    default_nuclei = (w.threshold_spin.value(), w.correction_spin.value())

    w.panel.set_model("other")
    assert w.panel.model_name() == "other"
    assert w.panel.predictor_settings().source == "other"
    assert _kinds(w.objects_combo) == ["any", "cells"]
    assert w.objects_combo.currentData() == "any"  # "nuclei" is not one of its kinds
    assert (w.threshold_spin.value(), w.correction_spin.value()) == (0.49, 0.45)
    assert (w.editor.threshold, w.editor.correction_threshold) == (0.49, 0.45)
    w.panel.set_objects("cells")
    assert (w.editor.threshold, w.editor.correction_threshold) == (0.49, 0.3)
    with pytest.raises(ValueError, match=r"unknown built-in model 'nope'.*fcfi-lite, other"):
        w.panel.set_model("nope")
    assert w.panel.model_name() == "other"

    layer = w.clicks_layer
    layer.feature_defaults = {"positive": True}
    layer.add((30, 40))
    w.wait()
    assert w.last_error is None
    assert w.labels_layer.data.any()

    w.panel.set_model(DEFAULT_MODEL)
    assert _kinds(w.objects_combo) == ["any", "nuclei"]
    w.panel.set_objects("nuclei")
    assert (w.threshold_spin.value(), w.correction_spin.value()) == default_nuclei


def test_the_predictor_cache_loads_a_builtin_model_by_name(two_models):
    from napari_fcfi.annotation.predictors import PredictorCache, PredictorSettings

    loaded = []

    def load(source, device=None):
        loaded.append(source)
        return mio.load_model(source, device=device)

    cache = PredictorCache(load_model=load, threads=1)
    predictor = cache.get(PredictorSettings("other", "cpu"), 0.49, 0.45)
    assert loaded == ["other"]
    assert predictor.correction_threshold == 0.45
    cache.get(PredictorSettings(None, "cpu"), 0.49)
    assert loaded == ["other", None]


def test_annotate_opens_on_the_named_model_and_checks_its_kinds(make_napari_viewer, two_models):
    from napari_fcfi._annotate import open_viewer
    from napari_fcfi.cli import build_parser

    def args(*extra):
        return build_parser().parse_args(["annotate", "--sample", "nuclei2d", *extra])

    viewer, w = open_viewer(args("--model", "other", "--objects", "cells"), make_napari_viewer())
    assert w.panel.model_name() == "other"
    assert w.objects_combo.currentData() == "cells"
    with pytest.raises(ValueError, match="unknown kind of object 'cells'.*any, nuclei"):
        open_viewer(args("--objects", "cells"), make_napari_viewer())
    checkpoint = str(two_models / "other.safetensors")
    with pytest.raises(ValueError, match="either --model or --checkpoint"):
        open_viewer(args("--model", "other", "--checkpoint", checkpoint), make_napari_viewer())
    with pytest.raises(SystemExit):
        args("--model", "nope")


def test_the_refine_widget_refines_with_the_chosen_model(make_napari_viewer, two_models):
    from napari_fcfi._refine_widget import RefineWidget

    w = RefineWidget(make_napari_viewer())
    names = [w.model_combo.itemData(i) for i in range(w.model_combo.count())]
    assert names == [DEFAULT_MODEL, "other"]
    first = w._get_predictor(DEFAULT_MODEL)
    assert w._get_predictor(DEFAULT_MODEL) is first  # loaded once
    other = w._get_predictor("other")
    assert other is not first and other.model is not first.model
    assert w._predictor_of == "other"
