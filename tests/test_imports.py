"""The import graph of ragkit: layers in order, no cycles, no isinstance on concrete classes.

Every ``import`` in ``ragkit/`` is read with :mod:`ast` (module level and inside functions,
not under ``TYPE_CHECKING``), so a lazy import that runs back up a floor fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ragkit"

# Lowest first. A module may import its own layer and the layers below it, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_lazy", "_arrays", "errors", "types", "filters", "fusion", "pricing", "tokens", "progress"),
    ("_bm25_numba",),
    ("outline", "analyzer", "_bm25_postings"),
    ("plugins",),
    ("bm25", "chunking", "audit"),
    ("base",),
    ("passages",),
    ("embedders", "vectors", "loaders", "stores", "retrievers", "rerankers", "gate", "contextual"),
    ("entries",),
    ("index",),
    ("ingest", "plan", "evaluation", "context"),
    ("messages", "claude"),
    ("answering", "watch"),
    ("cli_options", "cli_render", "mcp_results", "mcp_stdio"),
    # "" is the package itself (ragkit/__init__.py)
    ("mcp_server", "cli", "cli_ask", "cli_measure", "__main__", ""),
)

ALLOWED_UPWARD = {
    # ragkit.index.update_from_folder/index_folder/CHECKPOINT_SECONDS, moved to ragkit.ingest,
    # kept importable from the old path for one release (a PEP 562 __getattr__).
    ("ragkit.index", "ragkit.ingest"),
}

CONCRETE = {
    "Index": "ragkit.index",
    "MemoryStore": "ragkit.stores",
    "PostgresStore": "ragkit.stores",
}

ALLOWED_ISINSTANCE: set[tuple[str, str]] = set()


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for number, names in enumerate(LAYERS):
        if top in names:
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def _imports(module: str) -> set[str]:
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            self._add(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            self._add(node)

        def _add(self, node: ast.Import | ast.ImportFrom) -> None:
            for target in _targets(module, node):
                if target in MODULES and target != module:
                    found.add(target)

    Visitor().visit(ast.parse(MODULES[module].read_text(encoding="utf-8")))
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _own_part(module: str, target: str) -> bool:
    """A package importing one of its own submodules (its registry loading a backend)."""
    return MODULES[module].name == "__init__.py" and target.startswith(module + ".")


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    upward = [
        target
        for target in sorted(GRAPH[module])
        if _layer(target) > _layer(module)
        and not _own_part(module, target)
        and (module, target) not in ALLOWED_UPWARD
    ]
    assert upward == [], f"{module} (layer {_layer(module)}) imports {upward} from above"


def test_the_import_graph_has_no_cycle() -> None:
    edges = {
        module: {
            t for t in targets if not _own_part(module, t) and (module, t) not in ALLOWED_UPWARD
        }
        for module, targets in GRAPH.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_no_isinstance_on_a_concrete_index_or_store_outside_its_package() -> None:
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and len(node.args) == 2
            ):
                continue
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            for name in names & set(CONCRETE):
                home = CONCRETE[name]
                if module != home and not module.startswith(home + "."):
                    if (module, name) not in ALLOWED_ISINSTANCE:
                        found.append(f"{module}: isinstance(..., {name})")
    assert found == []


def test_the_layers_name_no_module_twice() -> None:
    names = [name for layer in LAYERS for name in layer]
    assert len(names) == len(set(names))
