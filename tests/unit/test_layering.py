"""The package's shape, read from its source: which layer may import which, no import circles,
module and function sizes, and no dict reads of request bodies in the HTTP and swarm layers.

Imports are collected from the whole syntax tree, so an import inside a function (a lazy one) or
under ``TYPE_CHECKING`` counts like one at the top of the module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "src" / "local_lattice"
PACKAGE = "local_lattice"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
# The top floor: the only modules that may import ``local_lattice.api``.
TOP_FLOOR = ("api", "cli", "cli_mlx", "console")
# The bottom floor imports nothing of the package but itself.
BOTTOM_FLOOR = ("types", "errors", "masking", "protocol")
BODY_NAMES = frozenset({"body"})
BODY_LAYERS = ("api", "swarm")
# Request bodies still read as dicts until the typed requests replace them: the number of reads per
# module may only fall. Lower (or drop) an entry when a module reads fewer; add none.
BODY_READS_ALLOWED = {
    "local_lattice.api.dispatch": 3,
    "local_lattice.api.routes_openai": 2,
    "local_lattice.api.routes_routing": 2,
    "local_lattice.api.swarm_runs": 24,
}


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def layer(self) -> str:
        """The first name below the package (``api`` for ``local_lattice.api.app``)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else ""

    def in_layer(self, *layers: str) -> bool:
        return self.layer in layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        found[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def imported(module: Module) -> Iterator[str]:
    """Every module of the package ``module`` imports, wherever the import statement is."""
    known = modules()
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in known else source


@cache
def graph() -> dict[str, frozenset[str]]:
    known = modules()
    return {
        name: frozenset(target for target in imported(module) if target in known and target != name)
        for name, module in known.items()
    }


def test_the_walker_sees_lazy_and_relative_imports() -> None:
    source = (
        "from . import sibling\n"
        "from .. import errors\n"
        "import local_lattice.types\n"
        "def later():\n"
        "    from local_lattice.api import app\n"
    )
    module = Module("local_lattice.routing.x", ROOT / "routing" / "x.py", ast.parse(source))
    found = set(imported(module))
    assert {"local_lattice.errors", "local_lattice.types", "local_lattice.api.app"} <= found
    assert "local_lattice.routing" in found  # ``sibling`` does not exist: the package is what is imported


def test_only_the_top_floor_imports_api() -> None:
    wrong = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if not modules()[name].in_layer(*TOP_FLOOR)
        for target in targets
        if modules()[target].in_layer("api")
    )
    assert wrong == []


def test_engines_never_import_backends() -> None:
    wrong = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if modules()[name].in_layer("engines")
        for target in targets
        if modules()[target].in_layer("backends")
    )
    assert wrong == []


def test_the_bottom_floor_imports_only_itself() -> None:
    wrong = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if modules()[name].in_layer(*BOTTOM_FLOOR)
        for target in targets
        if not modules()[target].in_layer(*BOTTOM_FLOOR)
    )
    assert wrong == []


def circles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_circles_are_found() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert circles(edges) == [["a", "b", "c"]]
    assert circles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_circles() -> None:
    assert circles(graph()) == []


def test_modules_fit_the_size_limit() -> None:
    long = {
        name: lines
        for name, module in modules().items()
        if (lines := len(module.path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_functions_fit_the_size_limit() -> None:
    long = sorted(
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, module in modules().items()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    )
    assert long == []


def body_reads(tree: ast.AST) -> int:
    """Reads of a request body as a dict: ``body[…]`` (not an assignment to it) and ``body.get(…)``."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get", "pop", "setdefault", "items", "keys", "values"}
        ):
            target = node.func.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in BODY_NAMES:
            count += 1
    return count


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ('body.get("model")', 1),
        ('body["model"]', 1),
        ('str(body["model"]).strip() or body.pop("x", None)', 2),
        ('body["stream"] = True', 0),  # building an answer or a backend request is no read
        ("request.model", 0),
    ],
)
def test_body_reads_are_counted(source: str, reads: int) -> None:
    assert body_reads(ast.parse(source)) == reads


def test_no_dict_reads_of_request_bodies_in_api_and_swarm() -> None:
    found = {name: body_reads(module.tree) for name, module in modules().items() if module.in_layer(*BODY_LAYERS)}
    over = {name: count for name, count in found.items() if count > BODY_READS_ALLOWED.get(name, 0)}
    assert over == {}, "read the typed request's fields instead"
    stale = {name: (allowed, found.get(name, 0)) for name, allowed in BODY_READS_ALLOWED.items()}
    assert {name: pair for name, pair in stale.items() if pair[1] < pair[0]} == {}, "lower the allowance"
