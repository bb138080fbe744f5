"""MLflow 3 traces and assessments as tracejudge entities, and our verdicts as MLflow Feedback.

MLflow's trace model is the one ours follows (trace ids ``tr-`` + 32 hex digits, spans with
typed inputs/outputs, Feedback/Expectation assessments with a source), so a conversion is a
field-by-field copy: ids are kept (a trace copied twice is the same trace), MLflow's own
bookkeeping attributes (``mlflow.*``: span type, inputs and outputs again as JSON) are dropped
because they are already in the fields, everything else travels.
"""

from __future__ import annotations

import json
from typing import Any

from tracejudge.entities import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
    Span,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    Trace,
    TraceData,
    TraceInfo,
    TraceState,
)
from tracejudge.entities._json import to_jsonable
from tracejudge.integrations.mlflow.compat import require_mlflow

MLFLOW_ORIGIN_TAG = "tracejudge.mlflow_origin"
"""Tag on a trace copied from MLflow: the tracking URI it came from."""
SOURCE_TRACE_TAG = "tracejudge.source_trace_id"
"""Tag on a trace exported to MLflow: our trace id (MLflow gives it a new one)."""
WRITTEN_BY = "tracejudge"
"""Metadata key on the Feedback we write into MLflow, so a rerun replaces instead of adding."""


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(to_jsonable(value), ensure_ascii=False)


def _preview(value: Any, limit: int = 1000) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else _json_text(value) or ""
    return text[:limit]


def _state(value: Any) -> TraceState:
    raw = str(getattr(value, "value", value) or "OK").upper()
    return TraceState(raw) if raw in TraceState.__members__ else TraceState.STATE_UNSPECIFIED


def span_from_mlflow(span: Any, trace_id: str) -> Span:
    status = span.status
    code = str(getattr(status.status_code, "value", status.status_code) or "UNSET").upper()
    attributes = {
        k: to_jsonable(v) for k, v in (span.attributes or {}).items() if not k.startswith("mlflow.")
    }
    return Span(
        trace_id=trace_id,
        span_id=span.span_id,
        parent_id=span.parent_id,
        name=span.name,
        span_type=span.span_type or "UNKNOWN",
        start_time_ns=int(span.start_time_ns or 0),
        end_time_ns=None if span.end_time_ns is None else int(span.end_time_ns),
        status=SpanStatus(
            SpanStatusCode(code) if code in SpanStatusCode.__members__ else SpanStatusCode.UNSET,
            status.description or "",
        ),
        inputs=to_jsonable(span.inputs),
        outputs=to_jsonable(span.outputs),
        attributes=attributes,
        events=[
            SpanEvent(
                e.name, int(e.timestamp), {k: to_jsonable(v) for k, v in e.attributes.items()}
            )
            for e in span.events or []
        ],
    )


def assessment_from_mlflow(item: Any, trace_id: str) -> Assessment | None:
    """An MLflow Feedback or Expectation as ours (same id), or None for another kind."""
    kind = type(item).__name__
    if kind not in ("Feedback", "Expectation"):
        return None
    source = item.source
    error = getattr(item, "error", None)
    common: dict[str, Any] = {
        "source": AssessmentSource(
            str(getattr(source, "source_type", "CODE") or "CODE"),
            str(getattr(source, "source_id", None) or "default"),
        )
        if source is not None
        else None,
        "trace_id": trace_id,
        "span_id": item.span_id,
        "rationale": getattr(item, "rationale", None),
        "metadata": dict(item.metadata or {}),
        "assessment_id": item.assessment_id,
        "create_time_ms": item.create_time_ms,
        "last_update_time_ms": item.last_update_time_ms,
        "overrides": item.overrides,
        "valid": bool(item.valid if item.valid is not None else True),
    }
    value = to_jsonable(item.value)
    if kind == "Expectation":
        return Expectation(item.name, value, **common)
    if error is not None:
        common["error"] = AssessmentError(
            str(getattr(error, "error_code", None) or "MLFLOW_ERROR"),
            getattr(error, "error_message", None),
        )
    return Feedback(item.name, value, **common)


def trace_from_mlflow(
    trace: Any, experiment_id: str, origin: str | None = None, include_ours: bool = True
) -> Trace:
    """An MLflow ``Trace`` as ours, in our experiment ``experiment_id`` (spans and assessments;
    without ``include_ours``, not the verdicts tracejudge wrote onto it: they are already ours)."""
    info = trace.info
    trace_id = info.trace_id
    spans = [span_from_mlflow(s, trace_id) for s in (trace.data.spans if trace.data else [])]
    root = next((s for s in spans if s.parent_id is None), None)
    request = _json_text(root.inputs) if root else None
    response = _json_text(root.outputs) if root else None
    tags = {str(k): str(v) for k, v in (info.tags or {}).items() if not k.startswith("mlflow.")}
    if origin:
        tags[MLFLOW_ORIGIN_TAG] = origin
    assessments = [
        assessment_from_mlflow(a, trace_id)
        for a in info.assessments or []
        if include_ours or not (a.metadata or {}).get(WRITTEN_BY)
    ]
    return Trace(
        TraceInfo(
            trace_id=trace_id,
            experiment_id=experiment_id,
            request_time=int(info.request_time),
            execution_duration=info.execution_duration,
            state=_state(info.state),
            name=(root.name if root else None) or (info.tags or {}).get("mlflow.traceName"),
            request_preview=info.request_preview or _preview(root.inputs if root else None),
            response_preview=info.response_preview or _preview(root.outputs if root else None),
            client_request_id=info.client_request_id,
            trace_metadata={
                str(k): str(v)
                for k, v in (info.trace_metadata or {}).items()
                if not k.startswith("mlflow.")
            },
            tags=tags,
            assessments=[a for a in assessments if a is not None],
        ),
        TraceData(spans, request, response),
    )


def _source_to_mlflow(source: AssessmentSource | None) -> Any:
    source = source or AssessmentSource()
    return require_mlflow().entities.AssessmentSource(source.source_type, source.source_id)


def assessment_to_mlflow(assessment: Assessment) -> Any:
    """Our Feedback or Expectation as MLflow's (the same span id: map it if MLflow's differ)."""
    if isinstance(assessment, Feedback):
        return feedback_to_mlflow(assessment)
    if not isinstance(assessment, Expectation):
        raise TypeError(f"Not an assessment MLflow knows: {type(assessment).__name__}")
    return require_mlflow().entities.Expectation(
        name=assessment.name,
        value=assessment.value,
        source=_source_to_mlflow(assessment.source),
        span_id=assessment.span_id,
    )


def feedback_to_mlflow(feedback: Feedback) -> Any:
    """Our Feedback as MLflow's (value, rationale, source, error, metadata marked as ours)."""
    entities = require_mlflow().entities
    metadata = {str(k): _metadata_text(v) for k, v in feedback.metadata.items()}
    metadata[WRITTEN_BY] = "1"
    error = None
    if feedback.error is not None:
        error = entities.AssessmentError(
            error_code=feedback.error.error_code, error_message=feedback.error.error_message
        )
    return entities.Feedback(
        name=feedback.name,
        value=None if error is not None else feedback.value,
        error=error,
        source=_source_to_mlflow(feedback.source),
        rationale=feedback.rationale,
        metadata=metadata,
        span_id=feedback.span_id,
    )


def _metadata_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(to_jsonable(value))
