"""Exporters depend on the library, never on the command line: no module of benchmark/exporters/ imports
benchmark.cli or benchmark.__main__ (at module level or inside a function)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMAND_LINE = ("benchmark.cli", "benchmark.__main__")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return names


def test_no_exporter_imports_the_command_line():
    exporters = sorted((REPO / "benchmark" / "exporters").glob("*.py"))
    assert {path.name for path in exporters} >= {"fcclip.py", "segmenter.py", "images.py"}
    for path in exporters:
        found = sorted(name for name in imported_modules(path) if name.startswith(COMMAND_LINE))
        assert found == [], f"{path.relative_to(REPO)} imports {found}"


def test_the_command_line_calls_the_exporters():
    from benchmark.__main__ import SUBCOMMANDS

    assert SUBCOMMANDS["export-fcclip"] == "benchmark.exporters.fcclip:main"
    assert "benchmark.exporters.segmenter" in imported_modules(REPO / "benchmark" / "cli.py")
