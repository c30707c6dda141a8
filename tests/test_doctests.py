"""The examples in the docstrings run as printed (doctest over every module of the package)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import weightsym

MODULES = sorted(m.name for m in pkgutil.walk_packages(weightsym.__path__, prefix="weightsym."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"


def test_some_docstrings_have_examples() -> None:
    finder = doctest.DocTestFinder()
    examples = sum(
        len(t.examples) for name in MODULES for t in finder.find(importlib.import_module(name))
    )
    assert examples >= 8
