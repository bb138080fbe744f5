"""Module-level shortcuts for the client's trace, tag and assessment calls on the current store."""

from __future__ import annotations

from typing import Any

from tracejudge.entities import Assessment, AssessmentSource, Expectation, Feedback, Trace
from tracejudge.tracing.client import Client
from tracejudge.tracing.legacy_names import accepts_request_id


@accepts_request_id
def get_trace(trace_id: str, include_spans: bool = True) -> Trace | None:
    """The trace with this id, or ``None`` when there is none."""
    return Client().get_trace(trace_id, include_spans)


@accepts_request_id
def set_trace_tag(trace_id: str, key: str, value: str) -> None:
    Client().set_trace_tag(trace_id, key, value)


@accepts_request_id
def delete_trace_tag(trace_id: str, key: str) -> None:
    Client().delete_trace_tag(trace_id, key)


@accepts_request_id
def log_feedback(
    trace_id: str,
    name: str = "feedback",
    value: Any = None,
    source: AssessmentSource | str | None = None,
    error: Any = None,
    rationale: str | None = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
    run_id: str | None = None,
) -> Feedback:
    """Attach a verdict to a trace (or one of its spans); values may be bool, number, string, list or dict."""
    return Client().log_feedback(
        trace_id, name, value, source, error, rationale, metadata, span_id, run_id
    )


@accepts_request_id
def log_expectation(
    trace_id: str,
    name: str,
    value: Any,
    source: AssessmentSource | str | None = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
) -> Expectation:
    """Attach ground truth (``expected_response``, ``expected_facts``, …) to a trace."""
    return Client().log_expectation(trace_id, name, value, source, metadata, span_id)


@accepts_request_id
def get_assessment(trace_id: str, assessment_id: str) -> Assessment:
    return Client().get_assessment(trace_id, assessment_id)


@accepts_request_id
def update_assessment(
    trace_id: str, assessment_id: str, assessment: Assessment | None = None, **changes: Any
) -> Assessment:
    return Client().update_assessment(trace_id, assessment_id, assessment, **changes)


@accepts_request_id
def delete_assessment(trace_id: str, assessment_id: str) -> None:
    Client().delete_assessment(trace_id, assessment_id)


@accepts_request_id
def override_feedback(
    trace_id: str,
    assessment_id: str,
    value: Any,
    rationale: str | None = None,
    source: AssessmentSource | str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Feedback:
    """Replace a feedback with a corrected one; the old one stays, marked invalid."""
    return Client().override_feedback(trace_id, assessment_id, value, rationale, source, metadata)
