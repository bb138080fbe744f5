"""The one protocol every trace store implements (SQL today, a REST client later)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from tracejudge.entities import Assessment, EvaluationRun, Experiment, Span, Trace

T = TypeVar("T")

GC_BATCH = 1000
"""Traces in retention's first delete transaction (later ones are sized by their duration)."""


class PagedList(list[T], Generic[T]):
    """A page of results; pass ``token`` back as ``page_token`` for the next page (``None`` at the end)."""

    def __init__(self, items: Sequence[T] = (), token: str | None = None) -> None:
        super().__init__(items)
        self.token = token


@runtime_checkable
class TraceStore(Protocol):
    """Persistence of experiments, traces, spans, tags and assessments."""

    uri: str

    # experiments
    def create_experiment(self, name: str) -> Experiment: ...
    def get_experiment(self, experiment_id: str) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def get_or_create_experiment(self, name: str) -> Experiment: ...
    def list_experiments(self) -> list[Experiment]: ...
    def experiment_activity(self) -> dict[str, dict[str, int | None]]:
        """Per experiment id with traces: ``{"trace_count": n, "last_trace_ms": t}``."""
        ...

    # traces
    def log_traces(self, traces: Sequence[Trace]) -> None:
        """Insert or update whole traces (info, tags, metadata and spans) in one transaction."""

    def log_spans(self, trace_id: str, spans: Sequence[Span]) -> None:
        """Add spans that finished after their trace was written."""

    def merge_traces(
        self, parts: Sequence[Trace], merge: Callable[[Trace | None, Trace], Trace]
    ) -> int:
        """Write parts of traces that arrive in pieces (distributed tracing, OTLP batches):
        each is ``merge(stored trace or None, part)``, read and written in one step that no
        other writer of the trace interleaves with; only the parts' spans are written again.
        Returns how many of the traces are new. (A store behind a tracking server merges with
        the server's own rule, :func:`tracejudge.tracing.trace_merge.merge_part`.)"""
        ...

    def get_trace(self, trace_id: str, include_spans: bool = True) -> Trace | None: ...

    def get_traces(self, trace_ids: Sequence[str], include_spans: bool = True) -> list[Trace]:
        """The traces that exist among ``trace_ids``, in one round trip (missing ones are left out)."""
        ...

    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_spans: bool = True,
    ) -> PagedList[Trace]: ...

    def delete_traces(self, trace_ids: Sequence[str]) -> int: ...

    def delete_traces_before(
        self,
        before_ms: int,
        experiment_ids: Sequence[str] | None = None,
        batch_size: int | None = None,
        max_batches: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Retention: delete traces that started before ``before_ms`` in bounded batches."""
        ...

    def trace_stats(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        group_by: str | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Aggregates of the matching traces, one dict per group (``hour``, ``day``, ``tag.x``)."""
        ...

    # tags
    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None: ...
    def delete_trace_tag(self, trace_id: str, key: str) -> None: ...

    # assessments
    def log_assessment(self, assessment: Assessment) -> Assessment: ...
    def log_assessments(self, assessments: Sequence[Assessment]) -> list[Assessment]: ...
    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment: ...
    def update_assessment(
        self, trace_id: str, assessment_id: str, changes: dict[str, Any]
    ) -> Assessment: ...
    def delete_assessment(self, trace_id: str, assessment_id: str) -> None: ...
    def override_assessment(
        self, trace_id: str, assessment_id: str, replacement: Assessment
    ) -> Assessment: ...

    # evaluation runs
    def create_run(self, run: EvaluationRun) -> None: ...
    def update_run(self, run: EvaluationRun) -> None: ...
    def get_run(self, run_id: str) -> EvaluationRun: ...
    def search_runs(
        self, experiment_ids: Sequence[str] | None = None, max_results: int = 1000
    ) -> list[EvaluationRun]: ...
    def get_run_assessments(self, run_id: str) -> list[Assessment]: ...

    # model-call cache (keyed by a hash of model, messages, parameters and sample index)
    def get_cached_call(self, key: str) -> str | None: ...
    def put_cached_calls(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """Store (key, model, response) entries, replacing keys already there."""

    def close(self) -> None: ...
