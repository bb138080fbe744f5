"""Reading evaluation runs back, and comparing two of them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tracejudge.entities import EvaluationRun, Feedback
from tracejudge.store import get_store
from tracejudge.store.base import TraceStore
from tracejudge.store.lookup import find_experiment


def get_run(run_id: str) -> EvaluationRun:
    """The stored evaluation run (raises RunNotFoundError)."""
    return get_store().get_run(run_id)


def search_runs(experiment: str | None = None, max_results: int = 1000) -> list[EvaluationRun]:
    """Runs of an experiment (name or id; all experiments when None), newest first."""
    store = get_store()
    ids = None if experiment is None else [find_experiment(store, experiment).experiment_id]
    return store.search_runs(ids, max_results)


@dataclass
class RunComparison:
    run_a: EvaluationRun
    run_b: EvaluationRun
    metric_deltas: pd.DataFrame
    """One row per metric key: value in a, value in b, b - a."""
    changed: pd.DataFrame
    """Traces whose verdict of a name differs between the runs: trace_id, name, a, b."""


def _verdicts(store: TraceStore, run_id: str) -> dict[tuple[str, str], object]:
    """(trace, feedback name) -> value, trace-level verdicts only (newest wins)."""
    out: dict[tuple[str, str], object] = {}
    for assessment in store.get_run_assessments(run_id):
        if isinstance(assessment, Feedback) and assessment.span_id is None and assessment.trace_id:
            out[(assessment.trace_id, assessment.name)] = (
                assessment.value if assessment.error is None else None
            )
    return out


def compare_runs(run_a: str, run_b: str, *, store: TraceStore | None = None) -> RunComparison:
    """Per-metric deltas (b - a) and the traces whose verdict changed from run a to run b
    (in ``store``, by default the tracking URI's)."""
    store = store or get_store()
    a, b = store.get_run(run_a), store.get_run(run_b)
    keys = sorted(set(a.metrics) | set(b.metrics))
    deltas = pd.DataFrame(
        [
            {
                "metric": k,
                "a": a.metrics.get(k),
                "b": b.metrics.get(k),
                "delta": (b.metrics[k] - a.metrics[k])
                if k in a.metrics and k in b.metrics
                else None,
            }
            for k in keys
        ],
        columns=["metric", "a", "b", "delta"],
    )
    va, vb = _verdicts(store, run_a), _verdicts(store, run_b)
    changed = pd.DataFrame(
        [
            {"trace_id": trace, "name": name, "a": va[(trace, name)], "b": vb[(trace, name)]}
            for trace, name in sorted(set(va) & set(vb))
            if va[(trace, name)] != vb[(trace, name)]
        ],
        columns=["trace_id", "name", "a", "b"],
    )
    return RunComparison(a, b, deltas, changed)
