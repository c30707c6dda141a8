"""The package's shape: small modules, short functions, data flowing one way.

Every module of ``src/weightsym`` has a rank; a module may import only modules of its own rank
or lower (the package root, which re-exports the public API, is never imported by a module).
The limits are those the project set itself: 400 lines a module, 80 lines a function
(a click command's declarative decorators are not counted).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "weightsym"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

RANKS = {
    "validation": 0,
    "hashing": 0,
    "activations": 0,
    "jsonable": 0,
    "io": 1,
    "model": 1,
    "results_folder": 2,
    "checkpoint": 2,
    "losses": 2,
    "symmetry": 2,
    "counting": 2,
    "weight_groups": 2,
    "userdata": 3,
    "data": 3,
    "pca": 3,
    "download": 3,
    "points": 3,
    "equal_loss_path": 3,
    "curvature": 3,
    "constraints": 3,
    "excess": 3,
    "diagnostics": 3,
    "optimize": 3,
    "channels": 4,
    "partner_channel": 4,
    "paths": 4,
    "varpro": 4,
    "whitening": 4,
    "certify": 5,
    "baselines": 5,
    "plots": 6,
    "experiments": 7,
    "commands": 8,
    "cli": 9,
}
"""Rank of each top-level module or subpackage of weightsym (lower: more basic)."""


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _top(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported(tree: ast.AST, path: Path) -> list[str]:
    """Top-level weightsym modules imported by ``tree`` ("" for the package root itself)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name.split(".")[1] if "." in a.name else "" for a in node.names
                    if a.name.split(".")[0] == "weightsym"]  # fmt: skip
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "weightsym":
                continue
            if len(parts) > 1:
                out.append(parts[1])
            else:  # from weightsym import X: X must be a submodule
                out += [a.name if (SRC / a.name).exists() or (SRC / f"{a.name}.py").exists()
                        else "" for a in node.names]  # fmt: skip
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_module_is_small_and_imports_downwards(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: over {MAX_MODULE_LINES}"
    if path == SRC / "__init__.py":
        return
    top = _top(path)
    assert top in RANKS, f"{top} has no rank in tests/test_architecture.py"
    tree = ast.parse(text)
    for name in _imported(tree, path):
        assert name != "", f"{path.name} imports the package root"
        assert name in RANKS, f"{path.name} imports unknown weightsym.{name}"
        assert RANKS[name] <= RANKS[top], f"{path.name} (rank {RANKS[top]}) imports {name}"


def _long_functions(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = node.lineno  # decorators excluded: declarative click options
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                out.append(f"{node.name} ({length} lines)")
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_functions_are_short(path: Path) -> None:
    assert not _long_functions(ast.parse(path.read_text())), path.name


def test_no_reference_outside_the_repository() -> None:
    root = SRC.parents[1]
    for path in [*_modules(), *(root / "tests").glob("*.py"), root / "README.md"]:
        text = path.read_text()
        for outside in ("SP" + "EC", "../" + "shared"):  # written so as not to match itself
            assert outside not in text, f"{path} cites {outside}, a document outside the repo"


def test_every_cited_theory_section_exists() -> None:
    root = SRC.parents[1]
    theory = (root / "docs" / "theory.md").read_text()
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?) ", theory, re.M))
    cited = set()
    for path in [*_modules(), *(root / "tests").glob("*.py"), root / "README.md"]:
        for match in re.finditer(
            r"docs/theory\.md`?\s+sections?\s+([\d.\-, and]+)", path.read_text()
        ):
            cited |= set(re.findall(r"\d+(?:\.\d+)?", match.group(1)))
    assert cited, "no citation of docs/theory.md found"
    assert cited <= headings, f"cited but missing in docs/theory.md: {sorted(cited - headings)}"
