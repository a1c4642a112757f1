"""Imports have a direction: no cycle anywhere under src/xlir, and the registry's layers go one way."""

import ast
from pathlib import Path

import xlir
import xlir.registry
from xlir.registry import LAYERS

SRC = Path(xlir.__file__).parent.parent


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def xlir_imports(source: str, modules: set[str]) -> set[str]:
    """The xlir modules ``source`` imports anywhere (top level or inside functions); ``from pkg import
    sub`` counts as importing ``pkg.sub`` only."""
    found = set()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "xlir":
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            if len(subs) < len(node.names):
                found.add(owner(node.module))
            found |= subs
        elif isinstance(node, ast.Import):
            found |= {owner(a.name) for a in node.names if a.name.split(".")[0] == "xlir"}
    return found - {None}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "xlir").rglob("*.py")}
    return {m: xlir_imports(p.read_text(), set(files)) - {m} for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_under_src_xlir():
    assert cycles(import_graph()) == []


def test_the_checks_see_a_cycle_and_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    modules = set(import_graph())
    probe = "def f():\n    from xlir.registry.promotion import decide\n    from xlir.registry import lock\n"
    assert xlir_imports(probe, modules) == {"xlir.registry.promotion", "xlir.registry.lock"}


def test_every_registry_module_imports_only_lower_layers():
    layer = {("xlir.registry" if name == "__init__" else f"xlir.registry.{name}"): i
             for i, names in enumerate(LAYERS) for name in names}
    graph = import_graph()
    modules = {m for m in graph if m.split(".")[:2] == ["xlir", "registry"]}
    assert modules == set(layer), f"place every module in LAYERS: {sorted(modules ^ set(layer))}"
    upward = [(m, dep) for m in sorted(modules) for dep in sorted(graph[m] & modules)
              if layer[dep] >= layer[m] and (m, dep) != ("xlir.registry.cli", "xlir.registry")]
    assert upward == []
