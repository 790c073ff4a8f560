"""The map in docs/architecture.md stays true: imports go one way, in the documented order.

The document lists every module of ``nc`` in one order, grouped in layers (the fenced block
marked ``layers``). These tests read that block and the source of every module and check:

- every module is listed exactly once, and nothing listed is missing;
- a module imports (at run time) only modules listed before it, so there is no cycle;
- no module imports an ``nc`` module inside a function or class body, and third-party
  imports inside functions are only the optional dependencies (extras), which must not be
  needed to import nc.

Imports under ``if TYPE_CHECKING:`` are for type hints only and are not counted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nc"
DOC = ROOT / "docs" / "architecture.md"

# Optional dependencies (setup.cfg extras): imported inside the functions that need them only.
OPTIONAL = {"sympy", "lark", "matplotlib", "deepxde", "torchdiffeq", "tqdm", "pysindy", "jax", "onnx",
            "onnxruntime", "onnxscript", "scipy", "pandas"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def documented_order() -> list[str]:
    text = DOC.read_text()
    block = re.search(r"```layers\n(.*?)```", text, flags=re.S)
    assert block, "docs/architecture.md has no ```layers block"
    order = []
    for line in block.group(1).splitlines():
        _, _, mods = line.partition(":")
        order += [m if m == "nc" else f"nc.{m}" for m in mods.split()]
    return order


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The nc modules an import statement names (a name imported from a package may be a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        here = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def runtime_imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {t for t in targets(module, node) if t in MODULES and t != module}
    return found


def nested_imports(module: str) -> list[tuple[int, str]]:
    """Imports that are not statements of the module itself (inside a def or class)."""
    tree = ast.parse(MODULES[module].read_text())
    top = {id(n) for n in tree.body}
    for n in tree.body:  # imports under a module-level if/try (TYPE_CHECKING, fallbacks) are module level
        if isinstance(n, (ast.If, ast.Try)):
            top |= {id(s) for s in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
            out += [(node.lineno, t) for t in targets(module, node)]
    return out


def test_every_module_is_on_the_map_once() -> None:
    order = documented_order()
    twice = sorted({m for m in order if order.count(m) > 1})
    assert not twice, f"listed twice in docs/architecture.md: {twice}"
    missing = sorted(set(MODULES) - set(order))
    assert not missing, f"add these modules to the layers block of docs/architecture.md: {missing}"
    stale = sorted(set(order) - set(MODULES))
    assert not stale, f"docs/architecture.md lists modules that no longer exist: {stale}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_map(module: str) -> None:
    order = documented_order()
    if module not in order:
        pytest.skip("not on the map (reported by test_every_module_is_on_the_map_once)")
    upward = sorted(t for t in runtime_imports(module) if t in order and order.index(t) > order.index(module))
    assert not upward, f"{module} imports {upward}, listed after it in docs/architecture.md"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_imports_inside_functions_except_optional_dependencies(module: str) -> None:
    bad = [(line, t) for line, t in nested_imports(module)
           if t == "nc" or t.startswith("nc.") or t.split(".")[0] not in OPTIONAL]
    assert not bad, f"{module}: imports inside a function (move them to the top): {bad}"


def test_the_map_has_no_cycles_in_fact() -> None:
    """Independent of the document: a depth-first search over the real import graph."""
    graph = {m: runtime_imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: tuple[str, ...]) -> None:
        if state.get(m) == 2:
            return
        assert state.get(m) != 1, f"import cycle: {' -> '.join(path + (m,))}"
        state[m] = 1
        for d in sorted(graph[m]):
            visit(d, path + (m,))
        state[m] = 2

    for m in sorted(graph):
        visit(m, ())
