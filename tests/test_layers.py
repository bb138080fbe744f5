"""The layering of DESIGN.md, checked on the source: a lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import tracejudge

ROOT = Path(tracejudge.__file__).parent
RANK = {
    # plain data and leaf modules
    "entities": 0,
    "errors": 0,
    "tracing_switch": 0,
    "settings": 0,
    "process_exit": 0,
    # persistence and the filter grammar
    "store": 1,
    "query": 1,
    # the SDK
    "tracing": 2,
    "integrations": 2,
    "openai": 2,
    # LLM access
    "models": 3,
    # verdicts
    "scorer": 4,
    "scorers": 4,
    "judges": 4,
    "trust": 4,
    "metrics": 4,
    # running them
    "evaluation": 5,
    "monitoring": 5,
    # faces
    "cli": 6,
    "server": 6,
    "ui": 6,
    "demo": 6,
    # support for tests and benchmarks: may use every layer, and no layer imports it
    "testing": 7,
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tracejudge" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        part = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if part == "__init__":
            continue  # the package face re-exports every layer
        assert part in RANK, f"{part} has no layer in this test (and in DESIGN.md?)"
        for target in _imports(path):
            if target in RANK and RANK[target] > RANK[part]:
                wrong.append(f"{path.relative_to(ROOT)} imports tracejudge.{target}")
    assert wrong == []


def test_the_model_layer_does_not_import_the_tracing_sdk():
    for path in (ROOT / "models").rglob("*.py"):
        assert "tracing" not in _imports(path), path
