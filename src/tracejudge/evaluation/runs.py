"""Reading evaluation runs back, and comparing two of them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tracejudge.entities import EvaluationRun, Feedback
from tracejudge.store import get_store
from tracejudge.store.base import TraceStore
from tracejudge.store.lookup import find_experiment
from tracejudge.tracing.constants import DATASET_RECORD


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
    """Rows whose verdict of a name differs between the runs: trace_id (run b's), name, a, b,
    trace_id_a, and record_id. Runs that scored the same evaluation dataset are matched record
    by record (each run made its own traces for the records); other runs trace by trace."""

    @property
    def same_data(self) -> bool | None:
        """For two runs on evaluation datasets: whether they saw the same records (digest);
        ``None`` when either scored other data."""
        a, b = self.run_a.dataset, self.run_b.dataset
        if a is None or b is None:
            return None
        return a.get("dataset_id") == b.get("dataset_id") and a.get("digest") == b.get("digest")


def _verdicts(store: TraceStore, run_id: str) -> dict[tuple[str, str], tuple[str, object]]:
    """(trace, feedback name) -> (trace, value), trace-level verdicts only (newest wins)."""
    out: dict[tuple[str, str], tuple[str, object]] = {}
    for assessment in store.get_run_assessments(run_id):
        if isinstance(assessment, Feedback) and assessment.span_id is None and assessment.trace_id:
            value = assessment.value if assessment.error is None else None
            out[(assessment.trace_id, assessment.name)] = (assessment.trace_id, value)
    return out


def _by_record(
    store: TraceStore, verdicts: dict[tuple[str, str], tuple[str, object]]
) -> dict[tuple[str, str], tuple[str, object]]:
    """The verdicts keyed by the dataset record their trace was made for (others dropped)."""
    traces = store.get_traces(sorted({trace for trace, _ in verdicts}), include_spans=False)
    record_of: dict[str, str] = {
        t.info.trace_id: t.info.trace_metadata[DATASET_RECORD]
        for t in traces
        if t.info.trace_metadata.get(DATASET_RECORD)
    }
    return {
        (record_of[trace], name): found
        for (trace, name), found in verdicts.items()
        if trace in record_of
    }


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
    by_record = (
        a.dataset is not None
        and b.dataset is not None
        and a.dataset.get("dataset_id") == b.dataset.get("dataset_id")
    )
    if by_record:
        va, vb = _by_record(store, va), _by_record(store, vb)
    rows = []
    for key in sorted(set(va) & set(vb)):
        (trace_a, value_a), (trace_b, value_b) = va[key], vb[key]
        if value_a != value_b:
            rows.append(
                {
                    "trace_id": trace_b,
                    "name": key[1],
                    "a": value_a,
                    "b": value_b,
                    "trace_id_a": trace_a,
                    "record_id": key[0] if by_record else None,
                }
            )
    columns = ["trace_id", "name", "a", "b", "trace_id_a", "record_id"]
    return RunComparison(a, b, deltas, pd.DataFrame(rows, columns=columns))
