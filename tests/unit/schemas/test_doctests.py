"""The examples in the schemas docstrings run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import schemas


def schema_modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.iter_modules(schemas.__path__, "schemas.")]
    return [schemas, *(importlib.import_module(name) for name in sorted(names))]


@pytest.mark.parametrize("module", schema_modules(), ids=lambda module: module.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_key_modules_have_examples() -> None:
    finder = doctest.DocTestFinder()
    for name in ("schemas.parse", "schemas.events", "schemas.outputs", "schemas.examples"):
        tests = finder.find(importlib.import_module(name))
        assert any(test.examples for test in tests), name
    parse_tests = finder.find(importlib.import_module("schemas.parse"))
    assert any(test.name.endswith("EventParser.parse") and test.examples for test in parse_tests)
