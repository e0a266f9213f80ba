"""The import graph of app/ and memory/ has no cycles, and memory/ does not reach into app/.

Every `import` counts, at module level or inside a function (a function-local import is the
same dependency, only deferred): a cycle means a definition lives in the wrong file, and the fix
is to move it where both sides can import it downward (docs/ARCHITECTURE.md, "Rules").
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "memory")

# memory/ is the layer under the service: it may use the engine's contract types and the MLX
# worker, and nothing else of app/. These are the imports it has today; a new one fails below.
MEMORY_TO_APP_ALLOWED = {
    ("memory.e5", "app.llm.worker"),
    ("memory.embedder_choice", "app.llm.worker"),
    ("memory.embeddings", "app.blas"),
    ("memory.embeddings", "app.llm.worker"),
    ("memory.recall", "app.llm.worker"),
    ("memory.summarizer", "app.llm.types"),
    ("memory.types", "app.llm.types"),
    # malloc_trim after a large read of the index (issue 15): a platform helper like app.blas
    ("memory.vector_index", "app.heap"),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The module of ours `name` refers to (its longest known prefix), or None."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module of app/ or memory/ -> line of the first such import}."""
    mods = _modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package[: len(package) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                # `from pkg import sub` imports the submodule when there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            else:
                continue
            for target in targets:
                dep = _resolve(target, mods)
                if dep is not None and dep != mod:
                    graph[mod].setdefault(dep, node.lineno)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def _describe(comp: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(comp)
    edges = [
        f"    {a} (line {line}) imports {b}"
        for a in comp
        for b, line in sorted(graph[a].items())
        if b in members
    ]
    return " <-> ".join(comp) + "\n" + "\n".join(edges)


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100  # the walk found the packages
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles (move the shared definition down a layer):\n" + "\n".join(
        _describe(c, graph) for c in cycles
    )


def test_memory_does_not_import_more_of_app() -> None:
    graph = import_graph()
    found = {
        (mod, dep)
        for mod, deps in graph.items()
        if mod.split(".")[0] == "memory"
        for dep in deps
        if dep.split(".")[0] == "app"
    }
    new = sorted(found - MEMORY_TO_APP_ALLOWED)
    assert not new, "memory/ imports app/ (memory is the layer below the service):\n" + "\n".join(
        f"    {mod} imports {dep} (line {graph[mod][dep]})" for mod, dep in new
    )


def test_the_checker_sees_a_cycle() -> None:
    """A cycle made of a function-local import is found and named."""
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 12}, "d": {"a": 1}}
    cycles = strongly_connected(graph)
    assert cycles == [["a", "b", "c"]]
    assert "c (line 12) imports a" in _describe(cycles[0], graph)
