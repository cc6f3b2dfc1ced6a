"""The code map (docs/architecture.md) names every module, and internal code imports each
name from the module that defines it (never from a package root or a module that merely
re-exports it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_fcfi"
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module and package of napari_fcfi."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["napari_fcfi", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported_names(path: Path) -> set[str]:
    """Names a module binds at its top level by importing them (``if`` and ``try`` blocks
    included; imports inside functions and classes bind nothing for other modules)."""
    names = set()
    todo = list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            todo.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                todo.extend(handler.body)
    return names


def _sections(text: str) -> dict[str, str]:
    """Heading -> the text under it, for the ``##`` and ``###`` headings."""
    out, name, lines = {}, "", []
    for line in text.splitlines():
        m = re.match(r"#{2,3} (.*)", line)
        if m:
            out[name] = "\n".join(lines)
            name, lines = m.group(1), []
        else:
            lines.append(line)
    out[name] = "\n".join(lines)
    return out


def test_the_code_map_names_every_module():
    sections = _sections(DOC.read_text())
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py":
            continue
        top = rel.parts[0]
        if len(rel.parts) == 1:  # a module of the package root
            where = sections.get("Shared modules", "") + sections.get("napari layer", "")
            wanted = f"`{rel.name}`"
        elif top == "_qt":
            where, wanted = sections.get("napari layer", ""), f"`_qt/{rel.name}`"
        else:
            heading = next((h for h in sections if h.startswith(f"`{top}/`")), None)
            where = sections.get(heading, "")
            wanted = rel.name
        if wanted not in where:
            missing.append(str(rel))
    assert not missing, f"docs/architecture.md does not name these modules: {missing}"


def test_internal_code_imports_names_from_their_defining_module():
    modules = _modules()
    cache: dict[str, set[str]] = {}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        package = ["napari_fcfi", *path.relative_to(PACKAGE).with_suffix("").parts][:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source not in modules or modules[source] == path:
                continue
            if path.name == "__init__.py" and source.startswith(".".join(package) + "."):
                continue  # a package's own public names, gathered from its modules
            bound = cache.setdefault(source, _imported_names(modules[source]))
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    continue  # a submodule
                if alias.name in bound:
                    rel = path.relative_to(PACKAGE)
                    offenders.append(f"{rel}:{node.lineno}: {alias.name} from {source}")
    assert not offenders, "import these names from the module that defines them:\n" + "\n".join(
        offenders
    )
