"""Local corrections: from the model's ``local_corrections_from`` click of an object on, a
correction changes the mask only in the connected parts of its change that reach the click.
"""

from __future__ import annotations

import numpy as np
import pytest

from _annotation_helpers import dark_image
from napari_fcfi.evaluation.robot import FcfiMethod, evaluate_instance
from napari_fcfi.inference.local import REACH, merge_local
from napari_fcfi.inference.maps import RoiMap
from napari_fcfi.inference.predictor import Predictor
from napari_fcfi.inference.resample import ScaledMap
from napari_fcfi.inference.session import InteractiveSession
from napari_fcfi.model.catalogue import builtin_config
from stubnet import DRIFT, DriftingStub, StubNet

SHAPE = (64, 80)


def test_merge_keeps_the_change_at_the_click_and_the_old_answer_elsewhere():
    prev = np.zeros(SHAPE, np.float32)
    prev[30:40, 30:40] = 0.9
    new = prev.copy()
    new[30:40, 40:46] = 0.8  # grown at the click
    new[5:10, 5:10] = 0.7  # appeared far away
    new[34:36, 30:32] = 0.1  # a hole far from the click (inside the old mask)
    out = merge_local(RoiMap.from_array(new), RoiMap.from_array(prev), (35, 44, True), 0.5)
    full = out.full()
    np.testing.assert_array_equal(full[30:40, 40:46], new[30:40, 40:46])
    np.testing.assert_array_equal(full[5:10, 5:10], 0)
    np.testing.assert_array_equal(full[34:36, 30:32], np.float32(0.9))
    # a change that comes within REACH pixels of the click counts as reaching it
    out = merge_local(
        RoiMap.from_array(new), RoiMap.from_array(prev), (35, 46 + REACH - 1, True), 0.5
    )
    np.testing.assert_array_equal(out.full()[30:40, 40:46], new[30:40, 40:46])


def test_merge_declines_when_nothing_changed_near_the_click():
    prev = np.zeros(SHAPE, np.float32)
    prev[30:40, 30:40] = 0.9
    new = prev.copy()
    new[5:10, 5:10] = 0.7
    # nothing changed at the click: the caller keeps the new answer whole
    assert merge_local(RoiMap.from_array(new), RoiMap.from_array(prev), (35, 60, True), 0.5) is None
    # values that change without crossing the threshold are no change
    same = prev * 0.95
    assert (
        merge_local(RoiMap.from_array(same), RoiMap.from_array(prev), (35, 35, True), 0.5) is None
    )
    with pytest.raises(TypeError, match="RoiMap"):
        scaled = ScaledMap(SHAPE, (0, 63, 0, 79), np.zeros((16, 20), np.float32))
        merge_local(scaled, RoiMap.from_array(prev), (35, 35, True), 0.5)


def test_merge_handles_answers_with_different_rectangles():
    prev = RoiMap(SHAPE, 10, 10, np.full((10, 20), 0.9, np.float32))  # rows 10-19
    new = RoiMap(SHAPE, 14, 10, np.full((18, 20), 0.9, np.float32))  # rows 14-31
    out = merge_local(new, prev, (25, 20, True), 0.5)
    full = out.full()
    assert full[31, 29] == np.float32(0.9)  # the part grown at the click
    assert full[10, 10] == np.float32(0.9)  # the part the new answer lost far away stays
    assert full.sum() == pytest.approx(0.9 * (200 + 240), rel=1e-5)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "three", float("nan")])
def test_the_setting_is_a_whole_number_of_clicks(bad):
    with pytest.raises(ValueError, match="local_corrections_from"):
        Predictor(StubNet(), device="cpu", local_corrections_from=bad)
    net = StubNet()
    net.inference_defaults = {"local_corrections_from": bad}
    with pytest.raises(ValueError, match="local_corrections_from.*inference_defaults"):
        Predictor(net, device="cpu")


def test_the_setting_comes_from_the_model_and_can_be_turned_off():
    net = StubNet()
    assert Predictor(net, device="cpu").local_corrections_from == 0  # official behaviour
    net.inference_defaults = {"local_corrections_from": 6}
    assert Predictor(net, device="cpu").local_corrections_from == 6
    assert Predictor(net, device="cpu", local_corrections_from=0).local_corrections_from == 0
    for name in ("fcfi-lite", "fcfi-lite-cells"):  # the built-in models keep it off
        assert builtin_config(name)["inference_defaults"].get("local_corrections_from", 0) == 0


def session(local_from):
    pred = Predictor(
        DriftingStub(), device="cpu", zoom_in=False, flip=False, local_corrections_from=local_from
    )
    return InteractiveSession(pred, dark_image(SHAPE))


def test_a_late_click_leaves_the_far_part_of_the_mask_alone_and_undo_restores():
    s = session(2)
    s.click(30, 40, True)
    first = s.mask.copy()
    assert not first[DRIFT].any()
    s.click(30, 47, True)  # grows the object next to the click
    second = s.mask
    assert second[30, 47] and second[first].all()
    assert not second[DRIFT].any()  # the stub's far square is not taken
    s.undo()
    np.testing.assert_array_equal(s.mask, first)
    # the same clicks with local corrections off: the far square arrives with the answer
    g = session(0)
    g.click(30, 40, True)
    g.click(30, 47, True)
    assert g.mask[DRIFT].all()
    # and before the given click count, corrections are global
    late = session(3)
    late.click(30, 40, True)
    late.click(30, 47, True)
    assert late.mask[DRIFT].all()


def test_the_robot_benchmark_uses_the_setting():
    gt = np.zeros(SHAPE, bool)
    gt[25:40, 30:55] = True
    ious = {}
    for local_from in (0, 2):
        pred = Predictor(
            DriftingStub(),
            device="cpu",
            zoom_in=False,
            flip=False,
            local_corrections_from=local_from,
        )
        method = FcfiMethod(pred)
        method.start(dark_image(SHAPE))
        ious[local_from], _ = evaluate_instance(method, gt, max_clicks=6)
    assert ious[0][0] == ious[2][0]  # the first click is the same
    assert ious[2][-1] > ious[0][-1]  # the far square is never added with local corrections


def test_the_evaluate_cli_takes_and_records_the_setting(tmp_path, capsys):
    import json

    import tifffile

    from napari_fcfi.cli import main

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    lab = np.zeros((48, 56), np.uint16)
    lab[10:30, 12:34] = 1
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.where(lab > 0, 200, 20).astype(np.uint8))
    tifffile.imwrite(tmp_path / "labels" / "a.tif", lab)
    folders = ["--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels")]
    out = tmp_path / "r.json"
    assert main(["evaluate", *folders, "--max-clicks", "3", "--local-from", "2",
                 "--json", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["settings"]["local_corrections_from"] == 2
    assert main(["evaluate", *folders, "--max-clicks", "3", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["local_corrections_from"] == 0
    capsys.readouterr()
    assert main(["evaluate", *folders, "--local-from", "-1"]) == 2
    assert "local_corrections_from" in capsys.readouterr().err
