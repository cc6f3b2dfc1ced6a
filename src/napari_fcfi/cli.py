"""Command-line entry point: ``napari-fcfi <command> ...``.

Each sub-command lives next to the code it drives and exposes two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Those modules must stay light to
import (torch and napari are imported inside ``run``) so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# command name -> module implementing add_parser/run
COMMANDS = {
    "annotate": "napari_fcfi._annotate",
    "evaluate": "napari_fcfi.evaluation.cli",
    "train": "napari_fcfi.training.cli",
    "refine": "napari_fcfi.stack.cli",
}


_ROLE = re.compile(r":(?:mod|func|class|meth|data|attr):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str | None) -> str | None:
    """reStructuredText markup of a docstring as plain terminal text: ``x`` -> x,
    :func:`~a.b` -> b, :mod:`a.b` -> a.b."""
    if not text:
        return text

    def role(m: re.Match) -> str:
        name = m.group(1)
        return name.rsplit(".", 1)[-1] if m.group(0).split("`")[1].startswith("~") else name

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


def _plain_help(parser: argparse.ArgumentParser) -> None:
    parser.description = plain(parser.description)
    parser.epilog = plain(parser.epilog)
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = plain(action.help)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="napari-fcfi",
        description="Interactive cell segmentation with FCFI (CVPR 2023) for napari.",
    )
    parser.add_argument("--version", action="version", version=f"napari-fcfi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMANDS.values():
        mod = importlib.import_module(modname)
        p = mod.add_parser(sub)
        _plain_help(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("napari-fcfi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
