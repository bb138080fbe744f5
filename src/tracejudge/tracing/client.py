"""The client API over a trace store: search, traces, tags and assessments.

``Client()`` uses the current tracking URI; ``Client("postgresql+psycopg://…")`` another store.
Reads first flush traces still waiting in the export queue, so a trace recorded a moment ago
is found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import pandas as pd

from tracejudge.entities import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    Expectation,
    Experiment,
    Feedback,
    Trace,
)
from tracejudge.errors import InvalidArgumentError, TraceNotFoundError
from tracejudge.store import PagedList, TraceStore, get_store
from tracejudge.store.base import GC_BATCH
from tracejudge.tracing.dataframe import traces_to_dataframe
from tracejudge.tracing.experiment import resolve_experiment_ids
from tracejudge.tracing.export import get_exporter
from tracejudge.tracing.legacy_names import accepts_request_id

R = TypeVar("R")
_ALL_PAGE_SIZE = 1000


def _source(source: AssessmentSource | str | dict[str, Any] | None) -> AssessmentSource | None:
    if source is None or isinstance(source, AssessmentSource):
        return source
    if isinstance(source, dict):
        return AssessmentSource.from_dict(source)
    return AssessmentSource(str(source))


class Client:
    def __init__(self, tracking_uri: str | None = None) -> None:
        self._uri = tracking_uri

    @property
    def store(self) -> TraceStore:
        return get_store(self._uri)

    def _retry_after_flush(self, call: Callable[[], R]) -> R:
        """Run ``call``; if the trace is not there yet, write pending traces and try once more."""
        try:
            return call()
        except TraceNotFoundError:
            if not get_exporter().flush(timeout=30):
                raise
            return call()

    # ------------------------------------------------------------ experiments

    def create_experiment(self, name: str) -> Experiment:
        return self.store.create_experiment(name)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    # ----------------------------------------------------------------- search

    def search_traces(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        *,
        filter_string: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_spans: bool = True,
    ) -> PagedList[Trace]:
        """One page of traces; pass ``page.token`` back as ``page_token`` for the next one.

        Everything after ``experiment_ids`` is keyword-only, in the module-level function's order.
        """
        get_exporter().flush(timeout=30)
        ids = resolve_experiment_ids(experiment_ids, self.store)
        orders = [order_by] if isinstance(order_by, str) else order_by
        return self.store.search_traces(
            ids, filter_string, orders, max_results, page_token, include_spans
        )

    def search_all(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        *,
        filter_string: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int | None = None,
        include_spans: bool = True,
    ) -> list[Trace]:
        """Every matching trace (or the first ``max_results``), fetched page by page."""
        if max_results is not None and (
            isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
        ):
            raise InvalidArgumentError(
                f"max_results must be a positive integer or None (all), not {max_results!r}."
            )
        found: list[Trace] = []
        token: str | None = None
        while max_results is None or len(found) < max_results:
            size = (
                _ALL_PAGE_SIZE
                if max_results is None
                else min(_ALL_PAGE_SIZE, max_results - len(found))
            )
            page = self.search_traces(
                experiment_ids,
                filter_string=filter_string,
                order_by=order_by,
                max_results=size,
                page_token=token,
                include_spans=include_spans,
            )
            found.extend(page)
            token = page.token
            if token is None:
                break
        return found

    def trace_stats(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        *,
        filter_string: str | None = None,
        group_by: str | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Aggregates of the matching traces, one dict per group (see :func:`trace_stats`)."""
        get_exporter().flush(timeout=30)
        ids = resolve_experiment_ids(experiment_ids, self.store)
        return self.store.trace_stats(ids, filter_string, group_by, metrics)

    def delete_traces(
        self,
        experiment_id: str | None = None,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: Sequence[str] | None = None,
    ) -> int:
        """MLflow's ``delete_traces``: the given ``trace_ids``, or the traces of an experiment
        (default: the active one) that started before ``max_timestamp_millis``, oldest first,
        at most ``max_traces`` of them. Returns how many were deleted."""
        if (trace_ids is None) == (max_timestamp_millis is None):
            raise InvalidArgumentError(
                "Give exactly one of trace_ids and max_timestamp_millis to delete_traces."
            )
        if trace_ids is not None:
            if max_traces is not None:
                raise InvalidArgumentError(
                    "max_traces goes with max_timestamp_millis, not trace_ids."
                )
            return self.store.delete_traces(list(trace_ids))
        if max_traces is not None and (
            isinstance(max_traces, bool) or not isinstance(max_traces, int) or max_traces < 1
        ):
            raise InvalidArgumentError(
                f"max_traces must be a positive integer, not {max_traces!r}."
            )
        ids = resolve_experiment_ids(experiment_id, self.store)
        assert max_timestamp_millis is not None
        if max_traces is None:
            return self.store.delete_traces_before(max_timestamp_millis, ids)
        deleted = 0
        while deleted < max_traces:
            n = self.store.delete_traces_before(
                max_timestamp_millis,
                ids,
                batch_size=min(GC_BATCH, max_traces - deleted),
                max_batches=1,
            )
            if n == 0:
                break
            deleted += n
        return deleted

    @accepts_request_id
    def get_trace(self, trace_id: str, include_spans: bool = True) -> Trace | None:
        trace = self.store.get_trace(trace_id, include_spans)
        if trace is None and get_exporter().flush(timeout=30):
            trace = self.store.get_trace(trace_id, include_spans)
        return trace

    # ------------------------------------------------------------------- tags

    @accepts_request_id
    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        self._retry_after_flush(lambda: self.store.set_trace_tag(trace_id, key, value))

    @accepts_request_id
    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        self._retry_after_flush(lambda: self.store.delete_trace_tag(trace_id, key))

    # ------------------------------------------------------------ assessments

    @accepts_request_id
    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        assessment.trace_id = trace_id
        return self._retry_after_flush(lambda: self.store.log_assessment(assessment))

    @accepts_request_id
    def log_feedback(
        self,
        trace_id: str,
        name: str = "feedback",
        value: Any = None,
        source: AssessmentSource | str | None = None,
        error: AssessmentError | Exception | str | None = None,
        rationale: str | None = None,
        metadata: dict[str, Any] | None = None,
        span_id: str | None = None,
        run_id: str | None = None,
    ) -> Feedback:
        if value is None and error is None:
            raise InvalidArgumentError("log_feedback needs a value or an error.")
        feedback = Feedback(
            name,
            value,
            source=_source(source),
            error=AssessmentError.coerce(error),
            rationale=rationale,
            metadata=metadata or {},
            span_id=span_id,
            run_id=run_id,
        )
        return self.log_assessment(trace_id, feedback)  # type: ignore[return-value]

    @accepts_request_id
    def log_expectation(
        self,
        trace_id: str,
        name: str,
        value: Any,
        source: AssessmentSource | str | None = None,
        metadata: dict[str, Any] | None = None,
        span_id: str | None = None,
    ) -> Expectation:
        expectation = Expectation(
            name, value, source=_source(source), metadata=metadata or {}, span_id=span_id
        )
        return self.log_assessment(trace_id, expectation)  # type: ignore[return-value]

    @accepts_request_id
    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        return self._retry_after_flush(lambda: self.store.get_assessment(trace_id, assessment_id))

    @accepts_request_id
    def update_assessment(
        self,
        trace_id: str,
        assessment_id: str,
        assessment: Assessment | None = None,
        **changes: Any,
    ) -> Assessment:
        """Change an assessment in place: pass a Feedback/Expectation with the new content, or fields
        (``value=``, ``rationale=``, ``metadata=``, ``valid=``, …)."""
        if assessment is not None:
            changes = {
                "value": getattr(assessment, "value", None),
                "rationale": assessment.rationale,
                "metadata": assessment.metadata,
                **({"source": assessment.source} if assessment.source else {}),
                **changes,
            }
        if "source" in changes:
            changes["source"] = _source(changes["source"])
        return self.store.update_assessment(trace_id, assessment_id, changes)

    @accepts_request_id
    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        self.store.delete_assessment(trace_id, assessment_id)

    @accepts_request_id
    def override_feedback(
        self,
        trace_id: str,
        assessment_id: str,
        value: Any,
        rationale: str | None = None,
        source: AssessmentSource | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Feedback:
        """Replace a feedback (a judge's, say) with a corrected one; the old one is kept, marked invalid."""
        old = self.store.get_assessment(trace_id, assessment_id)
        new = Feedback(
            getattr(old, "name", "feedback"),
            value,
            source=_source(source) or AssessmentSource("HUMAN"),
            rationale=rationale,
            metadata=metadata or {},
        )
        return self.store.override_assessment(trace_id, assessment_id, new)  # type: ignore[return-value]


def search_traces(
    experiment_ids: Sequence[str] | str | None = None,
    *,
    filter_string: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int | None = None,
    return_type: Literal["pandas", "list"] = "pandas",
    include_spans: bool = True,
) -> pd.DataFrame | list[Trace]:
    """Traces of the given experiments (default: the active one) matching ``filter_string``.

    Everything after ``experiment_ids`` is keyword-only (MLflow's positional order differs).

    >>> search_traces(filter_string="tag.env = 'prod' AND (feedback.trustworthiness < 0.5 OR status = 'ERROR')",
    ...               order_by=["feedback.trustworthiness ASC"])
    """
    if return_type not in ("pandas", "list"):
        raise InvalidArgumentError(f"return_type must be 'pandas' or 'list', not {return_type!r}.")
    traces = Client().search_all(
        experiment_ids,
        filter_string=filter_string,
        order_by=order_by,
        max_results=max_results,
        include_spans=include_spans,
    )
    return traces if return_type == "list" else traces_to_dataframe(traces)


def trace_stats(
    experiment_ids: Sequence[str] | str | None = None,
    *,
    filter_string: str | None = None,
    group_by: str | None = None,
    metrics: Sequence[str] | None = None,
    return_type: Literal["pandas", "list"] = "pandas",
) -> pd.DataFrame | list[dict[str, Any]]:
    """Dashboard figures over the matching traces, computed by the database.

    ``group_by``: ``"hour"`` or ``"day"`` (UTC buckets of the trace's start; the group is the
    bucket's start), ``"tag.<key>"`` (one group per value, None for traces without the tag) or
    None (one row). ``metrics`` (default count, error_rate, p50_latency): ``count``,
    ``error_rate``, ``mean_latency``, ``p<N>_latency`` (nearest-rank percentile of the
    duration in ms), ``feedback.<name>.mean``, ``feedback.<name>.pass_rate`` and
    ``feedback.<name>.count`` over each trace's current verdict of that name.

    With at most a time range as the filter and no tag grouping, the figures are read from
    per-hour sums the store keeps (fast over months of traces); then a percentile is within
    0.5 % + 0.5 ms of the exact value. Everything else is exact.

    >>> trace_stats(filter_string="tag.env = 'prod'", group_by="hour",
    ...             metrics=["count", "p95_latency", "feedback.groundedness.pass_rate"])
    """
    if return_type not in ("pandas", "list"):
        raise InvalidArgumentError(f"return_type must be 'pandas' or 'list', not {return_type!r}.")
    rows = Client().trace_stats(
        experiment_ids, filter_string=filter_string, group_by=group_by, metrics=metrics
    )
    if return_type == "list":
        return rows
    frame = pd.DataFrame(rows)
    if group_by in ("hour", "day") and not frame.empty:
        frame["group"] = pd.to_datetime(frame["group"], unit="ms", utc=True)
    return frame


def delete_traces(
    experiment_id: str | None = None,
    max_timestamp_millis: int | None = None,
    max_traces: int | None = None,
    trace_ids: Sequence[str] | None = None,
) -> int:
    """Delete traces by id, or those started before a time (MLflow's ``delete_traces``)."""
    return Client().delete_traces(experiment_id, max_timestamp_millis, max_traces, trace_ids)
