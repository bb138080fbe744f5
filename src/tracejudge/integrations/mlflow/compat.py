"""Which MLflow we work with: 3.x, imported only when an MLflow feature is used."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tracejudge.errors import IntegrationError

SUPPORTED = ">=3.3,<4"
INSTALL = "pip install 'tracejudge[mlflow]'"


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)


def check_version(version: str) -> None:
    """IntegrationError naming the supported range unless ``version`` is MLflow 3.3 or newer 3.x."""
    if not (3, 3) <= _version_tuple(version)[:2] < (4, 0):
        raise IntegrationError(
            f"MLflow {version} is not supported: tracejudge works with mlflow{SUPPORTED} "
            f"({INSTALL})."
        )


def require_mlflow() -> ModuleType:
    """The ``mlflow`` module, or an IntegrationError that says how to install it."""
    try:
        mlflow = importlib.import_module("mlflow")
    except ImportError:
        raise IntegrationError(
            f"The MLflow integration needs the mlflow package ({INSTALL})."
        ) from None
    check_version(mlflow.__version__)
    return mlflow


def experiments_argument(search: Callable[..., Any], experiment_ids: list[str]) -> dict[str, Any]:
    """The keyword that names the experiments to ``search_traces``: ``locations`` where this
    MLflow has it (newer 3.x deprecate ``experiment_ids`` for it), else ``experiment_ids``."""
    if "locations" in inspect.signature(search).parameters:
        return {"locations": experiment_ids}
    return {"experiment_ids": experiment_ids}
