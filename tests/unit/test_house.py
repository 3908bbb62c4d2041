"""The rules of the house (DESIGN.md, "Layout"): dependencies point down, the layer holds only
what a function imports, and no room grows past its size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared" / "python" / "lablink"
PRODUCT = {
    "lablink": LAYER,
    "lablink_listener": ROOT / "listener" / "lablink_listener",
    "lablink_client": ROOT / "client" / "lablink_client",
    "lablink_local": ROOT / "local" / "lablink_local",
    "lablink_cli": ROOT / "cli" / "lablink_cli",
}
# Who may import whom: the layer nothing above it; the local stack not the CLI; the
# functions, stacks, listener and client agent neither the local stack nor the CLI.
FORBIDDEN = {
    "lablink": {"lablink_local", "lablink_listener", "lablink_cli", "lablink_client", "stacks"},
    "lablink_listener": {"lablink_local", "lablink_cli"},
    "lablink_client": {"lablink", "lablink_local", "lablink_listener", "lablink_cli"},
    "lablink_local": {"lablink_cli"},
    "functions": {"lablink_local", "lablink_listener", "lablink_cli"},
    "stacks": {"lablink_local", "lablink_listener", "lablink_cli"},
}
FOLDERS = {**PRODUCT, "functions": ROOT / "functions", "stacks": ROOT / "stacks"}
MAX_LAYER_FILE_LINES = 400
MAX_CLASS_LINES = 200


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_packages(path: Path) -> set[str]:
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            packages.add(node.module.split(".")[0])
    return packages


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in _python_files(FOLDERS[package])
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_no_file_of_the_layer_is_over_the_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _python_files(LAYER)}
    assert {path: n for path, n in sizes.items() if n > MAX_LAYER_FILE_LINES} == {}


def test_no_class_is_over_the_limit():
    long_classes = {}
    for folder in PRODUCT.values():
        for path in _python_files(folder):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                    long_classes[f"{path.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long_classes == {}
