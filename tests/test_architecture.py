"""The house rules of docs/architecture.md, checked on the source: imports run one way, nothing
reaches through a client into its transport, and no module grows past 300 statements."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "refinery"

# layer → the layers it may import (besides itself). Keep in step with docs/architecture.md.
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "prompts": {"errors"},
    "wire": {"core", "errors"},
    "traces": {"core", "errors", "wire"},
    "testing": set(),  # the test server judges by the spec and its own rules, never the client's helpers
    "analysis": {"core", "errors", "prompts", "traces", "wire"},
    "patterns": {"core", "errors", "wire"},
    "report": {"analysis", "core", "errors", "traces"},
    "eval": {"core", "errors"},
    "app": {
        "analysis",
        "core",
        "errors",
        "eval",
        "patterns",
        "prompts",
        "refinery",
        "report",
        "testing",
        "traces",
        "wire",
    },
    "refinery": {"analysis", "app", "core", "errors", "report", "traces", "wire"},
    "__main__": {"app"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    return "refinery" if len(parts) == 1 else parts[1]


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out.append((name.removesuffix(".__init__"), path))
    return out


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "refinery":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "refinery")
    return found


def test_imports_run_one_way():
    wrong = []
    for name, path in modules():
        own = layer(name)
        for target in imports_of(path):
            other = layer(target)
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{name} imports {target} ({own} may import {sorted(ALLOWED[own])})")
    assert wrong == []


def test_every_layer_is_in_the_table():
    assert {layer(n) for n, _ in modules()} <= set(ALLOWED)


def test_nothing_reaches_through_a_client_into_its_transport():
    reaching = [
        f"{name}: {line.strip()}"
        for name, path in modules()
        if layer(name) not in ("wire", "testing")
        for line in path.read_text().splitlines()
        if re.search(r"\bclient\.transport\b|\.transport\.(budget|request|settings)\b", line)
    ]
    assert reaching == []


def test_no_module_is_over_300_statements():
    """Size measured in statements, not lines: a line cap pushed code into long lines, and the
    formatter (which CI runs) decides how many lines a statement takes."""
    sizes = {
        name: sum(isinstance(node, ast.stmt) for node in ast.walk(ast.parse(path.read_text())))
        for name, path in modules()
    }
    assert {n: s for n, s in sizes.items() if s > 300} == {}


def test_the_architecture_doc_names_every_layer():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for own in ALLOWED:
        if own not in ("__main__", "refinery"):
            assert f"`{own}" in doc, own


def test_the_architecture_page_names_every_module():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    unnamed = [name for name, path in modules() if path.name != "__init__.py" and path.name not in page]
    assert unnamed == []
