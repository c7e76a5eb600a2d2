"""No import cycles among the project's modules, function-level imports included (config.py and plugins.py
imported each other until isolate=true needed plugins.py without config.py)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "baselines", "methods", "streams")


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its source (top level or inside functions)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path

    def resolve(name: str) -> str | None:  # the longest project module prefix of a dotted name
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets.add(resolve(node.module))
                targets |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
        graph[name] = targets - {None, name}
    return graph


def test_no_import_cycles():
    graph = import_graph()
    assert "benchmark.plugins" in graph["benchmark.config"]  # the graph sees what it should
    cycles = []
    for start in graph:  # a path back to `start` through the graph is a cycle
        seen, frontier = set(), [(start, (start,))]
        while frontier:
            node, path = frontier.pop()
            for target in graph.get(node, ()):
                if target == start:
                    cycles.append(" -> ".join((*path, start)))
                elif target not in seen:
                    seen.add(target)
                    frontier.append((target, (*path, target)))
    assert not cycles, f"import cycles: {sorted(cycles)[:5]}"
