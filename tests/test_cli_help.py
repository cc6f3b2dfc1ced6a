"""Command-line help is plain text and names the built-in model one way."""

from __future__ import annotations

import pytest

from napari_fcfi.cli import COMMANDS, build_parser, plain


def test_plain_strips_restructured_text_markup():
    text = "``--split val`` keeps :mod:`napari_fcfi.splits`; see :func:`~a.b.load_model`."
    assert plain(text) == "--split val keeps napari_fcfi.splits; see load_model."


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out and ":func:" not in out, out
    assert "fcfi-lite-dsb" not in out
