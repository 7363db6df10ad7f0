"""Imports point down only: settings at the bottom; sources, lake and catalog; pipelines; the stack; the CLI on top.

Every ``import`` and ``from ... import`` of an ``airlake`` module in every module of a layer, lazy ones inside
functions included, is read with :mod:`ast` and checked against :data:`LAYERS` (docs/architecture.md draws it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("settings", ("airlake.settings",)),
    ("sources, lake, catalog", ("airlake.sources", "airlake.lake", "airlake.catalog")),
    ("pipelines", ("airlake.pipelines",)),
    ("stack", ("airlake.stack",)),
    ("command line and tools", ("airlake", "airlake.bench")),
]
"""Bottom first; a module may import its own layer and the layers below it."""

FOLDERS = {
    "airlake.settings": "settings",
    "airlake.sources": "sources",
    "airlake.lake": "lake",
    "airlake.catalog": "catalog",
    "airlake.pipelines": "pipelines",
    "airlake.stack": "stack",
    "airlake.bench": "bench",
    "airlake": "airlake",
}


def layer_of(module: str) -> int:
    """The layer of a dotted ``airlake`` module name (the longest matching package wins)."""
    best, level = "", -1
    for index, (_, packages) in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and len(package) > len(best):
                best, level = package, index
    return level


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) of every airlake import in a file, relative imports resolved against ``package``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name == "airlake" or name.startswith("airlake.")]


def modules() -> list[tuple[str, Path]]:
    out = []
    for package, folder in FOLDERS.items():
        root = REPO / folder
        for path in sorted(root.rglob("*.py")):
            if "superset" in path.relative_to(root).parts and folder == "stack":
                continue  # run by Superset's own interpreter, not part of airlake's import graph
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([package, *parts]), path))
    return out


def violations() -> list[str]:
    found = []
    for name, path in modules():
        own = layer_of(name)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for line, target in imports(path, package):
            if target == "airlake":
                continue  # the namespace package itself (its version)
            if layer_of(target) > own:
                found.append(
                    f"{path.relative_to(REPO)}:{line}: {name} ({LAYERS[own][0]}) imports {target}"
                    f" ({LAYERS[layer_of(target)][0]}), a layer above it"
                )
    return found


def test_every_module_belongs_to_a_layer():
    assert all(layer_of(name) >= 0 for name, _ in modules())
    assert len(modules()) > 40


def test_imports_point_down_only():
    assert violations() == []


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("from airlake.settings import load_settings", True),
        ("from airlake.pipelines.speed import SpeedPipeline", False),
        ("import airlake.cli", False),
    ],
)
def test_the_check_fails_on_an_upward_import(tmp_path: Path, source: str, allowed: bool):
    probe = tmp_path / "probe.py"
    probe.write_text(source + "\n")
    [(_, target)] = imports(probe, "airlake.lake")
    assert (layer_of(target) <= layer_of("airlake.lake.probe")) is allowed
