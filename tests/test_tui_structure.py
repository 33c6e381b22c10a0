"""The TUI's shape: it reaches the core only through the service, has no import circles, and
no screen or widget file grows into a thousand-line class again."""

from __future__ import annotations

import ast
from pathlib import Path

TUI = Path(__file__).resolve().parents[1] / "tui"
ALLOWED_CORE = {"core.service", "core.models", "core.errors"}
MAX_LINES = 420  # "about 400": a file above it is doing more than one job


def module_name(path: Path) -> str:
    parts = path.relative_to(TUI.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every import, also inside functions and TYPE_CHECKING blocks."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def tui_graph() -> dict[str, set[str]]:
    modules = {module_name(p): imports_of(p) for p in TUI.rglob("*.py")}
    return {name: {d for d in deps if d in modules} for name, deps in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_tui_reaches_the_core_only_through_the_service() -> None:
    offending = {
        (module_name(path), dep)
        for path in TUI.rglob("*.py")
        for dep in imports_of(path)
        if dep.split(".")[0] == "core" and dep not in ALLOWED_CORE
    }
    # The console script hands subcommands to the CLI; it is the one door the other way.
    assert offending == {("tui.launcher", "core.cli")}


def test_the_tui_has_no_import_circle() -> None:
    assert find_cycle(tui_graph()) is None


def test_the_cycle_finder_finds_a_circle() -> None:
    """Guard against a check that cannot fail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]


def test_no_tui_file_is_over_about_400_lines() -> None:
    sizes = {
        str(p.relative_to(TUI.parent)): len(p.read_text(encoding="utf-8").splitlines())
        for p in TUI.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
