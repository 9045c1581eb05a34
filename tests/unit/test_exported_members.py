"""The public surface of each package is exactly what its ``__all__`` declares."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import schemas
import scorers
import streams
import streams.api
import streams.ingest
import streams.learner
import streams.models
import streams.round
import streams.runtime
import streams.state

PACKAGES = [
    schemas,
    scorers,
    streams,
    streams.api,
    streams.ingest,
    streams.learner,
    streams.models,
    streams.round,
    streams.runtime,
    streams.state,
]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_public_names_are_exported(package: ModuleType) -> None:
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    } | set(getattr(package, "_LAZY", {}))  # a face that loads its re-exports on first use
    assert sorted(package.__all__) == sorted(public)
    assert len(set(package.__all__)) == len(package.__all__)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_exported_classes_and_functions_are_documented_and_local(package: ModuleType) -> None:
    for name in package.__all__:
        member = getattr(package, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__.startswith(f"{package.__name__}."), name
            assert inspect.getdoc(member), f"{name} has no docstring"
