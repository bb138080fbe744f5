"""MLflow 2's custom-metric API (``make_metric`` / ``MetricValue``), for ``evaluate(extra_metrics=...)``.

Code written for ``mlflow.metrics.make_metric`` runs with only the import changed: the
function receives whole columns as pandas Series, named by its parameters, and returns a
MetricValue with one score per row and optional aggregates.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tracejudge.entities import AssessmentSource, AssessmentSourceType, Feedback
from tracejudge.errors import InvalidArgumentError


@dataclass
class MetricValue:
    scores: list[Any] | None = None
    """One score per row (a number, string or bool; None for no score)."""
    justifications: list[str | None] | None = None
    aggregate_results: dict[str, float] | None = None


@dataclass
class EvaluationMetric:
    eval_fn: Callable[..., MetricValue]
    name: str
    greater_is_better: bool = True
    long_name: str | None = None
    version: str | None = None
    metric_details: str | None = None
    metric_metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"EvaluationMetric(name={self.name!r}, greater_is_better={self.greater_is_better})"

    def compute(
        self, columns: Mapping[str, pd.Series], metrics: Mapping[str, MetricValue]
    ) -> MetricValue:
        """Call ``eval_fn`` with the columns its parameters name (plus ``metrics``)."""
        params = inspect.signature(self.eval_fn).parameters
        kwargs: dict[str, Any] = {}
        for name, param in params.items():
            if param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                continue
            if name == "metrics":
                kwargs[name] = dict(metrics)
            elif name in columns:
                kwargs[name] = columns[name]
            elif param.default is inspect.Parameter.empty:
                raise InvalidArgumentError(
                    f"Metric {self.name!r} asks for {name!r}, which the data does not have "
                    f"(available: {', '.join(sorted(columns))})."
                )
        if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs.update({k: v for k, v in columns.items() if k not in kwargs})
        value = self.eval_fn(**kwargs)
        if not isinstance(value, MetricValue):
            raise InvalidArgumentError(
                f"Metric {self.name!r} returned {type(value).__name__}, not a MetricValue."
            )
        return value

    def feedbacks(self, value: MetricValue, rows: int) -> list[list[Feedback]]:
        """Per-row Feedback from a MetricValue (scores and justifications line up with rows)."""
        scores = list(value.scores or [])
        if scores and len(scores) != rows:
            raise InvalidArgumentError(
                f"Metric {self.name!r} returned {len(scores)} scores for {rows} rows."
            )
        reasons: Sequence[str | None] = list(value.justifications or [None] * len(scores))
        source = AssessmentSource(AssessmentSourceType.CODE, self.name)
        out: list[list[Feedback]] = [[] for _ in range(rows)]
        for i, score in enumerate(scores):
            if score is None or (isinstance(score, float) and score != score):
                continue
            plain = score.item() if hasattr(score, "item") else score  # numpy scalars
            out[i].append(
                Feedback(
                    self.name,
                    plain,
                    source=source,
                    rationale=reasons[i] if i < len(reasons) else None,
                )
            )
        return out


def make_metric(
    *,
    eval_fn: Callable[..., MetricValue],
    greater_is_better: bool,
    name: str | None = None,
    long_name: str | None = None,
    version: str | None = None,
    metric_details: str | None = None,
    metric_metadata: dict[str, Any] | None = None,
) -> EvaluationMetric:
    """A custom metric, as ``mlflow.metrics.make_metric`` makes one.

    >>> def eval_fn(predictions, targets):
    ...     scores = [float(p == t) for p, t in zip(predictions, targets)]
    ...     return MetricValue(scores=scores, aggregate_results={"mean": sum(scores) / len(scores)})
    >>> exact = make_metric(eval_fn=eval_fn, greater_is_better=True, name="exact_match")
    """
    if not callable(eval_fn):
        raise InvalidArgumentError("make_metric needs eval_fn, a function returning a MetricValue.")
    return EvaluationMetric(
        eval_fn=eval_fn,
        name=str(name or getattr(eval_fn, "__name__", "metric")),
        greater_is_better=greater_is_better,
        long_name=long_name,
        version=version,
        metric_details=metric_details,
        metric_metadata=dict(metric_metadata or {}),
    )
