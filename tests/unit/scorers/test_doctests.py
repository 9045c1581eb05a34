"""The examples in the scorers' docstrings run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import scorers


def scorer_modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.iter_modules(scorers.__path__, "scorers.")]
    return [importlib.import_module(name) for name in sorted(names)]


@pytest.mark.parametrize("module", scorer_modules(), ids=lambda module: module.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
