"""The shape of the code: imports point one way, and docs/architecture.md names every module.

Sources → queue → workers → core, stores underneath: the import graph of service/ and workers/
(module-level and in-function imports alike) has no cycle, the pure core imports nothing of the
project outside itself (but ``service.constants``), stores never import workers, and the API
never reaches into worker internals.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "workers")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for statement in branch.body
        for node in ast.walk(statement)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            module = candidate
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module and module != name:
                targets.add(module)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    for name, path in modules.items():  # a package importing its own submodules is no cycle
        if path.name == "__init__.py":
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
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
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles(_graph()) == []


def test_arrows_point_one_way() -> None:
    forbidden = []
    for source, targets in _graph().items():
        for target in targets:
            core_leak = source.startswith("service.core") and not (
                target.startswith("service.core") or target in ("service", "service.constants")
            )
            store_to_workers = source.startswith("service.store") and target.startswith("workers")
            api_to_workers = source.startswith("service.api") and target.startswith("workers")
            if core_leak or store_to_workers or api_to_workers:
                forbidden.append(f"{source} -> {target}")
    assert forbidden == []


def test_the_cli_group_is_a_leaf() -> None:
    assert _graph()["service.cli"] <= {"service"}


def test_architecture_doc_names_every_module() -> None:
    """Every module (or its package, for ``service/core/query/``-style rows) is in the table."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:service|workers)/[\w/.]*)`", text))
    missing = []
    for path in _modules().values():
        relative = path.relative_to(ROOT).as_posix()
        parents = {relative.rsplit("/", 1)[0] + "/"}
        if relative not in named and not parents & named and path.name != "__init__.py":
            missing.append(relative)
    assert missing == []
    for entry in named:
        assert (ROOT / entry).exists(), f"docs/architecture.md names {entry}, which is gone"
