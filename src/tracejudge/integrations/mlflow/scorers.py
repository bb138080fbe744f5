"""tracejudge's verdicts inside MLflow: any scorer as an MLflow 3 scorer, and the trust score as
an MLflow 2-style metric for ``mlflow.evaluate(extra_metrics=[...])``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from tracejudge.entities import Trace
from tracejudge.errors import InvalidArgumentError
from tracejudge.integrations.mlflow.compat import require_mlflow
from tracejudge.integrations.mlflow.convert import feedback_to_mlflow, trace_from_mlflow
from tracejudge.models import ChatModel
from tracejudge.scorer import Scorer
from tracejudge.scorers import scorer as as_scorer
from tracejudge.scorers import to_feedbacks
from tracejudge.trust import TrustScorer


def _our_scorer(item: Scorer | Callable[..., Any]) -> Scorer:
    if isinstance(item, Scorer):
        return item
    if callable(item):
        return as_scorer(item)
    raise InvalidArgumentError(
        f"to_mlflow_scorer() takes a tracejudge scorer or a function, not {type(item).__name__}."
    )


def _our_trace(trace: Any) -> Trace | None:
    if trace is None or isinstance(trace, Trace):
        return trace
    return trace_from_mlflow(trace, experiment_id="0")


def to_mlflow_scorer(item: Scorer | Callable[..., Any]) -> Any:
    """An MLflow 3 scorer that runs ``item`` (a tracejudge scorer, built-in judge scorer,
    ``make_judge`` judge, ``Trustworthiness()`` or a ``@scorer`` function) and returns its
    verdicts as MLflow Feedback with value, rationale, source and error.

    >>> mlflow.genai.evaluate(data=rows, scorers=[to_mlflow_scorer(RetrievalGroundedness())])
    """
    mlflow = require_mlflow()
    ours = _our_scorer(item)

    def run(
        inputs: Any = None, outputs: Any = None, expectations: Any = None, trace: Any = None
    ) -> Any:
        value = ours(
            inputs=inputs, outputs=outputs, expectations=expectations, trace=_our_trace(trace)
        )
        feedbacks = [feedback_to_mlflow(f) for f in to_feedbacks(ours, value)]
        if not feedbacks:
            return None
        return feedbacks[0] if len(feedbacks) == 1 else feedbacks

    run.__name__ = ours.name
    run.__doc__ = f"tracejudge scorer {ours!r}"
    return mlflow.genai.scorers.scorer(run, name=ours.name)


def to_mlflow_scorers(items: Sequence[Scorer | Callable[..., Any]]) -> list[Any]:
    return [to_mlflow_scorer(i) for i in items]


def trust_metric(
    model: str | ChatModel | None = None,
    quality_preset: str = "medium",
    name: str = "trustworthiness",
) -> Any:
    """The trust score as an MLflow 2-style metric: ``mlflow.evaluate(..., extra_metrics=
    [trust_metric()])`` scores each row's prediction as a response to its ``inputs`` column
    (map another column with ``evaluator_config={"col_mapping": {"inputs": "question"}}``).
    Per-row scores and explanations, and mean / median / p90 / min / max aggregates."""
    mlflow = require_mlflow()
    from mlflow.metrics.base import MetricValue

    trust = TrustScorer(model=model, quality_preset=quality_preset)

    def eval_fn(predictions: Any, inputs: Any) -> Any:
        prompts = [str(p) for p in list(inputs)]
        responses = [str(r) for r in list(predictions)]
        results = trust.get_trustworthiness_score(prompts, responses) if prompts else []
        scores: list[float] = []
        reasons: list[str] = []
        for result in results:
            assert isinstance(result, dict)  # lists in, a list of dicts out
            score = result.get("trustworthiness_score")
            log = result.get("log") or {}
            scores.append(math.nan if score is None else float(score))  # NaN: not scored
            reasons.append(str(log.get("explanation") or log.get("error") or ""))
        present = sorted(s for s in scores if s is not None and not math.isnan(s))
        aggregates = (
            {
                "mean": statistics.fmean(present),
                "median": statistics.median(present),
                "p90": present[min(len(present) - 1, int(0.9 * len(present)))],
                "min": present[0],
                "max": present[-1],
            }
            if present
            else {}
        )
        return MetricValue(scores=scores, justifications=reasons, aggregate_results=aggregates)

    return mlflow.metrics.make_metric(
        eval_fn=eval_fn,
        greater_is_better=True,
        name=name,
        long_name="tracejudge trustworthiness score",
        version="v1",
    )
