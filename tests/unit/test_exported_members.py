"""The public surface of ``schemas`` is exactly what ``__all__`` declares."""

from __future__ import annotations

import inspect
from types import ModuleType

import schemas


def test_all_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(schemas).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert sorted(schemas.__all__) == sorted(public)
    assert len(set(schemas.__all__)) == len(schemas.__all__)


def test_exported_classes_and_functions_are_documented_and_come_from_schemas() -> None:
    for name in schemas.__all__:
        member = getattr(schemas, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__.startswith("schemas."), name
            assert inspect.getdoc(member), f"{name} has no docstring"
