"""The import graph goes strictly downward: cli -> lsp_server / harness -> fim, no cycles.

Read from the source with ``ast``, so an import inside a function counts as much as one
at the top of a module. Imports under ``if TYPE_CHECKING:`` must respect the floors too,
but do not count for cycles (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fim", "lsp_server", "harness", "cli")
#: What each package may import, besides itself.
ALLOWED = {
    "fim": set(),
    "lsp_server": {"fim"},
    "harness": {"fim"},
    "cli": {"fim", "lsp_server", "harness"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported module, runs at import or call time) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_runtime = runtime and not _type_checking_block(child)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child_runtime) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                found.append((base, child_runtime))
                # `from package import module` imports the module too.
                found.extend((f"{base}.{alias.name}", child_runtime) for alias in child.names)
            visit(child, child_runtime)

    visit(tree, True)
    return found


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
    }


def graph() -> dict[str, set[str]]:
    """Runtime edges between the project's modules."""
    modules = project_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, runtime in imports_of(path):
            if runtime and target in modules and target != name:
                edges[name].add(target)
    return edges


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_floors_below_it(package: str) -> None:
    wrong = []
    for name, path in project_modules().items():
        if name.split(".")[0] != package:
            continue
        for target, _runtime in imports_of(path):
            top = target.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules() -> None:
    edges = graph()
    done: set[str] = set()
    path: list[str] = []
    cycles: list[list[str]] = []

    def walk(node: str) -> None:
        path.append(node)
        for target in sorted(edges[node]):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                walk(target)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        if node not in done:
            walk(node)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_harness_never_reads_private_names_of_fim() -> None:
    private = []
    for name, path in project_modules().items():
        if not name.startswith("harness"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in ("engine", "backend")
            ):
                private.append(f"{name}:{node.lineno} {node.value.id}.{node.attr}")
    assert not private, "\n".join(private)
