"""The package's layout: no import circle, every public name resolves, tools see the same names.

Built from the source files (``ast``), independently of ``hdlcore.__init__``'s lazy map, so a name
missing from the map or a module that cannot be imported fails here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import hdlcore as hd

PACKAGE = Path(hd.__file__).resolve().parent
ROOT = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Modules of the package that ``name`` imports, at the top or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # names imported only for type checkers are never imported at run time
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
                elif target in MODULES:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
    return found - {name}


def test_no_import_circle_even_inside_functions():
    graph = {name: imports_of(name) for name in MODULES}
    # A package's __init__ re-exports its modules; the modules never import their package back.
    for name, deps in graph.items():
        for dep in deps:
            if MODULES[dep].name == "__init__.py" and name in graph[dep]:
                pytest.fail(f"{name} imports its own package {dep}, which imports it")
    reexports = {n: {d for d in deps if d.startswith(n + ".")} for n, deps in graph.items()
                 if MODULES[n].name == "__init__.py"}
    edges = {n: deps - reexports.get(n, set()) for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [node, dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def test_all_is_the_export_map_plus_the_subpackages():
    assert sorted(hd.__all__) == sorted([*hd._EXPORTS, *hd._SUBMODULES, "__version__"])
    assert len(set(hd.__all__)) == len(hd.__all__)


def test_type_checking_block_imports_every_exported_name():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(n for n in tree.body
                 if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names:
            seen[alias.asname or alias.name] = node.module or alias.name
    expected = {**hd._EXPORTS, **{s: s for s in hd._SUBMODULES}}
    assert seen == expected


def test_every_public_name_and_module_resolves_in_a_fresh_interpreter():
    code = f"""
import importlib, json
import hdlcore as hd
bad = []
for name in hd.__all__:
    try:
        getattr(hd, name)
    except Exception as exc:
        bad.append(f"hd.{{name}}: {{exc!r}}")
for mod in {sorted(MODULES)!r}:
    try:
        importlib.import_module(mod)
    except Exception as exc:
        bad.append(f"{{mod}}: {{exc!r}}")
print(json.dumps(bad))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_flat_and_subpackage_names_are_the_same_objects():
    assert hd.grow is hd.matrix.grow
    assert hd.certify is hd.matrix.certify
    assert hd.train is hd.networks.train
    assert hd.grow_network is hd.networks.grow_network
    assert hd.dropout_risk is hd.dropout.dropout_risk
    assert hd.degree is hd.homogeneity.degree
