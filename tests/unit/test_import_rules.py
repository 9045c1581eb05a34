"""The import rules of the layout (docs/ARCHITECTURE.md): arrows run down, never in a circle.

Read from the source (every ``import``, also those inside functions and ``TYPE_CHECKING``
blocks), so a rule broken by a lazy import fails here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The project's packages, lowest first: a module imports only its own layer or lower ones.
LAYERS: tuple[str, ...] = ("crm_core", "schemas", "scorers", "streams", "crm_score")

#: The subpackages of ``streams``, lowest first; those on one line may not import each other.
STREAMS_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"round"}),
    frozenset({"state"}),
    frozenset({"models"}),
    frozenset({"ingest"}),
    frozenset({"api", "learner"}),
    frozenset({"runtime"}),
)

#: Third-party packages that do I/O, which the pure layers never import.
IO_PACKAGES = frozenset({"aiohttp", "aiokafka", "faust", "hiredis", "mode", "redis"})
PURE = ("schemas", "scorers", "streams.round")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in LAYERS for path in (ROOT / package).rglob("*.py")
    }


MODULES = _modules()


def _import_statements(name: str, path: Path) -> Iterator[tuple[str, list[str]]]:
    """Each import of module ``name`` as (the module it reads, the names it takes from it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            yield source, [alias.name for alias in node.names]


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every module ``name`` imports (a ``from m import x`` names ``m.x`` when that is one)."""
    for source, names in _import_statements(name, path):
        yield source
        yield from (f"{source}.{n}" for n in names if f"{source}.{n}" in MODULES)


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _streams_layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "streams" or len(parts) < 2:
        return None
    for level, names in enumerate(STREAMS_LAYERS):
        if parts[1] in names:
            return level
    return None


def test_the_import_graph_covers_the_project() -> None:
    assert {"crm_core.errors", "streams.state.keys", "crm_score.cli"} <= GRAPH.keys()
    assert "crm_core.errors" in GRAPH["scorers.segments"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_down_the_layers(module: str) -> None:
    own = LAYERS.index(module.split(".")[0])
    upward = [
        target
        for target in GRAPH[module]
        if target.split(".")[0] in LAYERS and LAYERS.index(target.split(".")[0]) > own
    ]
    assert upward == [], f"{module} imports a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _streams_layer(m) is not None))
def test_streams_subpackages_import_only_lower_ones(module: str) -> None:
    own = _streams_layer(module)
    assert own is not None
    wrong = []
    for target in GRAPH[module]:
        level = _streams_layer(target)
        same_package = target.split(".")[:2] == module.split(".")[:2]
        if level is not None and not same_package and level >= own:
            wrong.append(target)
    assert wrong == [], f"{module} imports a streams subpackage at or above its own: {wrong}"


@pytest.mark.parametrize(
    "module", sorted(m for m in GRAPH if any(m == p or m.startswith(f"{p}.") for p in PURE))
)
def test_pure_layers_do_no_io(module: str) -> None:
    io = [target for target in GRAPH[module] if target.split(".")[0] in IO_PACKAGES]
    assert io == [], f"{module} is pure but imports {io}"


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in GRAPH:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == []


def test_importing_the_round_loads_no_io_library() -> None:
    probe = (
        "import sys, streams.round.scorer; "
        f"print(sorted(set(sys.modules) & set({sorted(IO_PACKAGES)!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def _test_modules() -> dict[str, Path]:
    """Every module of the tests tree and the benchmarks (which may use test helpers)."""
    return {
        _module_name(path): path
        for folder in ("tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
    }


def _imported_names(name: str, path: Path) -> Iterator[str]:
    """Every module name ``name`` imports, and each ``m.x`` of a ``from m import x``."""
    for source, names in _import_statements(name, path):
        yield source
        yield from (f"{source}.{n}" for n in names)


@pytest.mark.parametrize("module", sorted(_test_modules()))
def test_no_module_imports_a_test_module(module: str) -> None:
    """Shared helpers live in ``conftest.py`` or a module not named ``test_*``: a test module
    imported by another runs its module-level code twice and ties two tests' files together."""
    path = _test_modules()[module]
    wrong = sorted(
        target
        for target in set(_imported_names(module, path))
        if target.startswith("tests.") and target.rpartition(".")[2].startswith("test_")
    )
    assert wrong == [], f"{module} imports test modules {wrong}: move what it needs to a helper"


def test_the_unit_tests_mirror_the_source_tree() -> None:
    """Each folder of ``tests/unit/`` is a folder of the repository (``tests/unit/streams/state/``
    holds the tests of ``streams/state/``)."""
    unit = ROOT / "tests" / "unit"
    folders = [
        p.relative_to(unit) for p in unit.rglob("*") if p.is_dir() and p.name != "__pycache__"
    ]
    assert folders, "no folders under tests/unit"
    assert [f for f in folders if not (ROOT / f).is_dir()] == []
