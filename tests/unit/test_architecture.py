"""The house rules DESIGN.md states, read from the source: no import cycle, no screen
imports another screen or the App (screens post messages, the App navigates)."""

from __future__ import annotations

import ast
from pathlib import Path

import stepflow_top

ROOT = Path(stepflow_top.__file__).parent
SCREENS = {f"ui.screens.{name}" for name in ("detail", "executions", "health", "help", "log")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """Package modules ``path`` imports when it runs (not under ``if TYPE_CHECKING``)."""
    name = module_name(path)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
               for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("stepflow_top."):
                target = node.module.removeprefix("stepflow_top.")
            else:
                continue
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name.removeprefix("stepflow_top.") for a in node.names
                          if a.name.startswith("stepflow_top.")]
        else:
            continue
        found |= {c for c in candidates if (ROOT / (c.replace(".", "/") + ".py")).exists()}
    return found - {name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): runtime_imports(p) for p in ROOT.rglob("*.py")}


def test_there_is_no_import_cycle():
    edges = graph()
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in trail:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, trail + [nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done:
            visit(start, [start])
    assert cycles == []


def test_screens_import_no_screen_and_not_the_app():
    edges = graph()
    assert {m for m in edges if m.startswith("ui.screens.")} == SCREENS  # all screens here
    found = {(screen, target) for screen in SCREENS for target in edges[screen]
             if target in SCREENS | {"ui.app"}}
    assert found == set()
