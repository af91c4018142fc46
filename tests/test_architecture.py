"""The house rules, checked on the source: the import graph has no cycle, traffic runs one way
(the core reaches targets only through the registry, passes never import targets, the simulator
and the mixed-precision search never import the API), no private name crosses a module, and no
target name is compared with a string outside targets/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from paths import ROOT

# installed package name -> source directory (pyproject.toml's package-dir)
PACKAGES = {"adaptc": ROOT / "adaptc", "adaptc.passes": ROOT / "passes", "adaptc.targets": ROOT / "targets",
            "adaptc.templates": ROOT / "templates"}
TARGET_NAMES = {"cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55", "llvm", "cuda"}
REGISTRY = {"adaptc.targets", "adaptc.targets.base"}       # what the core may import of targets/


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    out = {}
    for pkg, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            if pkg == "adaptc" and parts and parts[0] in ("passes", "targets", "templates"):
                continue                                     # (symlinks in a worktree)
            out[".".join([pkg, *parts])] = path
    return out


MODULES = modules()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import statement in module
    ``name``, relative imports resolved; module-level and function-level alike (not those under
    ``if TYPE_CHECKING``)."""
    tree = ast.parse(MODULES[name].read_text())
    base = name if is_package(name) else name.rpartition(".")[0]
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING") for n in ast.walk(block)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:               # annotations only: never executed
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base.split(".")
                pkg = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(pkg + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.append((mod, [a.name for a in node.names], node.lineno))
    return out


def edges(name: str) -> set[str]:
    """The package's modules that module ``name`` imports (``from pkg import sub``: the submodule)."""
    out = set()
    for mod, names, _ in imports(name):
        if not mod.startswith("adaptc"):
            continue
        subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
        out |= set(subs) if subs and len(subs) == len(names) else {mod} if mod in MODULES else set(subs)
        out |= {s for s in subs}
    out.discard(name)
    return out


GRAPH = {m: edges(m) for m in MODULES}


def core(name: str) -> bool:
    return name == "adaptc" or (name.startswith("adaptc.") and not name.startswith(
        ("adaptc.passes", "adaptc.targets", "adaptc.templates")))


def test_the_walk_sees_the_package():
    assert {"adaptc.api", "adaptc.passes.insert_gates", "adaptc.targets.cortex_m.emit",
            "adaptc.targets.cuda.batched", "adaptc.targets.cortex_m.kernels.conv2d"} <= set(MODULES)
    assert "adaptc.targets.cortex_m.kernels.registry" in GRAPH["adaptc.targets.cortex_m.kernels.conv2d"]
    assert "adaptc.targets" in GRAPH["adaptc.api"]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_core_reaches_targets_only_through_the_registry():
    bad = [(m, t) for m, ts in GRAPH.items() if core(m) for t in ts
           if t.startswith("adaptc.targets") and t not in REGISTRY]
    assert not bad, bad


def test_passes_never_import_targets():
    bad = [(m, t) for m, ts in GRAPH.items() if m.startswith("adaptc.passes") for t in ts
           if t.startswith("adaptc.targets")]
    assert not bad, bad


@pytest.mark.parametrize("module", ["adaptc.sim", "adaptc.mixed", "adaptc.pipeline", "adaptc.model"])
def test_lower_layers_never_import_the_api(module):
    assert "adaptc.api" not in GRAPH[module] and "adaptc.cli" not in GRAPH[module]


def test_no_private_name_crosses_a_module():
    bad = []
    for m in MODULES:
        for mod, names, line in imports(m):
            if mod.startswith("adaptc"):
                bad += [f"{m}:{line} imports {mod}.{n}" for n in names if n.startswith("_") and n != "__version__"]
        tree = ast.parse(MODULES[m].read_text())
        aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                   for a in node.names if (getattr(node, "module", None) or a.name).startswith(("adaptc", "."))
                   or node.__class__ is ast.ImportFrom and node.level}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{m}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def _target_literal(node) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in TARGET_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_target_literal(e) for e in node.elts)
    return False


def test_no_target_name_compared_outside_targets():
    bad = []
    for m, path in MODULES.items():
        if m.startswith("adaptc.targets"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(_target_literal(x) for x in [node.left, *node.comparators]):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad
