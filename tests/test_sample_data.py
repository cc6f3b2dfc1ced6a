"""The shipped sample images and the npe2 manifest (no Qt)."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest

from napari_fcfi._sample_data import SAMPLES, load_sample, nuclei2d, nuclei3d, sources


def test_samples_load_with_provenance():
    total = 0
    for key, (fname, _) in SAMPLES.items():
        ((data, meta, kind),) = load_sample(key)
        assert kind == "image" and meta["name"] == key
        assert data.dtype == np.uint8 and data.std() > 5
        assert sources()[fname]["license"] in ("CC0-1.0", "BSD-3-Clause")
        total += files("napari_fcfi").joinpath("data", fname).stat().st_size
    assert total < 1_000_000
    img = nuclei2d()[0][0]
    assert img.shape == (360, 360)
    vol, meta, _ = nuclei3d()[0]
    assert vol.shape == (36, 128, 128) and len(meta["scale"]) == 3
    assert "Redistribution" in sources()["nuclei3d.tif"]["license_text"]
    with pytest.raises(ValueError, match="unknown sample"):
        load_sample("nope")


def test_manifest_declares_widget_and_samples():
    import npe2

    pm = npe2.PluginManifest.from_distribution("napari-fcfi")
    widgets = [w.display_name for w in pm.contributions.widgets]
    assert "Interactive segmentation (FCFI)" in widgets
    keys = {s.key for s in pm.contributions.sample_data}
    assert keys >= set(SAMPLES)


def test_annotate_cli_parses():
    from napari_fcfi.cli import build_parser

    args = build_parser().parse_args(["annotate", "--sample", "nuclei3d", "--device", "cpu"])
    assert args.sample == "nuclei3d" and args.image is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["annotate", "--sample", "nope"])


def test_annotate_bad_input_exits_cleanly(tmp_path, capsys):
    from napari_fcfi import cli

    assert cli.main(["annotate", str(tmp_path / "missing.tif")]) == 2
    assert "does not exist" in capsys.readouterr().err
    img = tmp_path / "img.tif"
    img.write_bytes(b"")
    assert cli.main(["annotate", str(img), "--sample", "nuclei2d"]) == 2
    assert "either IMAGE or --sample" in capsys.readouterr().err
