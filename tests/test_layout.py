"""The layers of rib/ (README, "Layout"): each module imports only from its own layer or the layers
above it, and no two modules import each other, directly or through others."""

import ast
from pathlib import Path

RIB = Path(__file__).resolve().parents[1] / "rib"
LAYERS = [  # top to bottom: a module may import from its own layer and the ones before it
    {"rib.schema", "rib.errors", "rib.io", "rib.config", "rib.artifacts"},
    {"rib.data"},
    {"rib.features"},
    {"rib.evaluation"},
    {"rib.models"},
    {"rib.insight"},
    {"rib.ops"},
    {"rib.steps"},
    {"rib.tuning"},
    {"rib.cli"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(RIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in RIB.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """Project modules a file imports, anywhere in it (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        found |= {name for name in names if name in MODULES and name != "rib"}
    return found


def layer(module: str) -> int:
    return next(i for i, group in enumerate(LAYERS) if any(module == g or module.startswith(g + ".") for g in group))


def test_every_module_has_a_layer_and_imports_only_from_above():
    for module, path in MODULES.items():
        if module == "rib":
            continue
        for other in imported(path):
            assert layer(other) <= layer(module), f"{module} (layer {layer(module)}) imports {other} ({layer(other)})"


def test_no_import_cycle_between_modules():
    graph = {module: imported(path) - {module} for module, path in MODULES.items()}
    done, active = set(), []

    def visit(module: str) -> None:
        if module in active:
            raise AssertionError("import cycle: " + " -> ".join([*active[active.index(module) :], module]))
        if module in done:
            return
        active.append(module)
        for other in sorted(graph[module]):
            visit(other)
        active.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_library_never_imports_dagster():
    for module, path in MODULES.items():
        assert "dagster" not in {name.split(".")[0] for name in _all_imports(path)}, module


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names
