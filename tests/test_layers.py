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
    "client": 2,
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
    "datasets": 5,
    # faces
    "cli": 6,
    "server": 6,
    "ui": 6,
    "demo": 6,
    # support for tests and benchmarks: may use every layer, and no layer imports it
    "testing": 7,
}


SUBLAYERS = {("integrations", "mlflow"): 6}
"""Sub-packages above their package's layer: the MLflow bridge runs evaluations and scorers."""


def _rank(parts: tuple[str, ...]) -> int:
    for prefix, rank in SUBLAYERS.items():
        if parts[: len(prefix)] == prefix:
            return rank
    return RANK[parts[0]]


def _imports(path: Path) -> set[tuple[str, ...]]:
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
                found.add(tuple(parts[1:]))
    return found


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = tuple(p.removesuffix(".py") for p in path.relative_to(ROOT).parts)
        if parts[0] == "__init__":
            continue  # the package face re-exports every layer
        assert parts[0] in RANK, f"{parts[0]} has no layer in this test (and in DESIGN.md?)"
        for target in _imports(path):
            if target[0] in RANK and _rank(target) > _rank(parts):
                wrong.append(f"{path.relative_to(ROOT)} imports tracejudge.{'.'.join(target)}")
    assert wrong == []


def test_the_model_layer_does_not_import_the_tracing_sdk():
    for path in (ROOT / "models").rglob("*.py"):
        assert "tracing" not in {t[0] for t in _imports(path)}, path
