"""The house: no import cycle between the project's modules, function-level imports included (a cycle that only
runs inside a function still ties two modules into one unit nobody can read or test apart)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("benchmark", "baselines", "methods", "streams")


def module_names() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
        for path in (REPO / package).rglob("*.c"):  # a C extension (setup.py) is a module, not its package
            modules[".".join(path.relative_to(REPO).with_suffix("").parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (`from a.b import c` counts a.b.c when
    that is a module, else a.b)."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        if path.suffix != ".py":  # compiled code imports no project module
            graph[name] = set()
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package
                    for _ in range(node.level - 1):
                        parent = parent.rpartition(".")[0]
                    base = f"{parent}.{base}".strip(".")
                targets.update([base, *(f"{base}.{alias.name}" for alias in node.names)])
        graph[name] = {resolved for t in targets if (resolved := resolve(t)) and resolved != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_sees_function_level_imports(tmp_path):
    (tmp_path / "one.py").write_text("from pkg.two import helper\n")
    (tmp_path / "two.py").write_text("def helper():\n    from pkg import one  # only when called\n    return one\n")
    (tmp_path / "three.py").write_text("import pkg.one\n")
    graph = import_graph({f"pkg.{name}": tmp_path / f"{name}.py" for name in ("one", "two", "three")})
    assert graph == {"pkg.one": {"pkg.two"}, "pkg.two": {"pkg.one"}, "pkg.three": {"pkg.one"}}
    assert cycles(graph) == [["pkg.one", "pkg.two"]]


def test_no_import_cycles():
    assert cycles(import_graph(module_names())) == []


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph with each folder under a top-level package (benchmark/hosts/, methods/knnclip/) as one
    node, and each top-level module (benchmark/runner.py) as its own."""
    def folder(name: str) -> str:
        return ".".join(name.split(".")[:2])

    folders: dict[str, set[str]] = {}
    for name, targets in graph.items():
        folders.setdefault(folder(name), set()).update(folder(t) for t in targets if folder(t) != folder(name))
    return folders


def test_no_import_cycles_between_folders():
    assert cycles(folder_graph(import_graph(module_names()))) == []
