"""Conversion between entities and rows of the store's tables."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tracejudge.entities import (
    Assessment,
    AssessmentSource,
    EvaluationRun,
    Experiment,
    RunStatus,
    Span,
    Trace,
    TraceInfo,
    TraceState,
)
from tracejudge.entities._json import loads
from tracejudge.entities.assessment import sort_value
from tracejudge.errors import DataRefusedError, StoreError

PREVIEW_CHARS = 1000

E = TypeVar("E")


def _entity_row(build: Callable[[E], dict[str, Any]]) -> Callable[[E], dict[str, Any]]:
    """A row builder whose failure is the caller's bad data: an entity holding a value of the
    wrong type (a list where a name goes, ``"slow"`` as a duration, from a client that built
    it by hand) is refused before it reaches the database or breaks a later read."""

    @functools.wraps(build)
    def wrapper(entity: E) -> dict[str, Any]:
        try:
            return build(entity)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            kind = type(entity).__name__
            raise DataRefusedError(
                f"The {kind} has a field of the wrong type ({type(exc).__name__}: {exc})"
            ) from None

    return wrapper


def string_form(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


@_entity_row
def assessment_row(a: Assessment) -> dict[str, Any]:
    value = getattr(a, "value", None)
    source = a.source or AssessmentSource()
    return {
        "assessment_id": a.assessment_id,
        "trace_id": a.trace_id,
        "span_id": a.span_id,
        "name": getattr(a, "name", None),
        "kind": a.kind,
        "value_json": None if value is None else json.dumps(value),
        "string_value": string_form(value),
        "numeric_value": sort_value(value, a.metadata),
        "rationale": a.rationale,
        "source_type": source.source_type,
        "source_id": source.source_id,
        "run_id": a.run_id,
        "error_json": json.dumps(a.error.to_dict()) if a.error else None,
        "metadata_json": json.dumps(a.metadata) if a.metadata else None,
        "valid": bool(a.valid),
        "latest": False,  # the store marks the newest valid one before writing it
        "overrides": a.overrides,
        "create_time_ms": a.create_time_ms,
        "last_update_time_ms": a.last_update_time_ms,
    }


def assessment_from_row(row: Mapping[Any, Any]) -> Assessment:
    return Assessment.from_dict(
        {
            "kind": row["kind"],
            "name": row["name"],
            "value": None if row["value_json"] is None else json.loads(row["value_json"]),
            "source": {"source_type": row["source_type"], "source_id": row["source_id"]},
            "trace_id": row["trace_id"],
            "span_id": row["span_id"],
            "run_id": row["run_id"],
            "rationale": row["rationale"],
            "metadata": json.loads(row["metadata_json"]) if row["metadata_json"] else {},
            "error": json.loads(row["error_json"]) if row["error_json"] else None,
            "assessment_id": row["assessment_id"],
            "create_time_ms": row["create_time_ms"],
            "last_update_time_ms": row["last_update_time_ms"],
            "overrides": row["overrides"],
            "valid": bool(row["valid"]),
        }
    )


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


@_entity_row
def trace_row(trace: Trace) -> dict[str, Any]:
    info = trace.info
    return {
        "trace_id": info.trace_id,
        "experiment_id": int(info.experiment_id),
        "timestamp_ms": info.request_time,
        "execution_time_ms": (
            None if info.execution_duration is None else int(info.execution_duration)
        ),
        "status": info.state.value,
        "name": info.name,
        "client_request_id": info.client_request_id,
        "request_preview": _clip(info.request_preview),
        "response_preview": _clip(info.response_preview),
        "request": trace.data.request,
        "response": trace.data.response,
    }


def trace_info_from_row(
    row: Mapping[Any, Any],
    tags: dict[str, str],
    metadata: dict[str, str],
    assessments: list[Assessment],
) -> TraceInfo:
    return TraceInfo(
        trace_id=row["trace_id"],
        experiment_id=str(row["experiment_id"]),
        request_time=int(row["timestamp_ms"]),
        execution_duration=row["execution_time_ms"],
        state=TraceState(row["status"]),
        name=row["name"],
        request_preview=row["request_preview"],
        response_preview=row["response_preview"],
        client_request_id=row["client_request_id"],
        trace_metadata=metadata,
        tags=tags,
        assessments=assessments,
    )


@_entity_row
def span_row(span: Span) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_id,
        "name": span.name[:256],
        "span_type": str(span.span_type)[:64],
        "status": span.status.status_code.value,
        "start_time_ns": span.start_time_ns,
        "end_time_ns": span.end_time_ns,
        "content": span.to_json(),
    }


def span_from_row(row: Mapping[Any, Any]) -> Span:
    """The span stored in ``row``; a payload that is not a stored span (edited or damaged in
    the database) is a :class:`StoreError` naming its trace, not a bare ``KeyError``."""
    try:
        return Span.from_dict(loads(row["content"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(
            f"A stored span of trace {row.get('trace_id')!r} cannot be read "
            f"({type(exc).__name__}: {exc}); its row in the spans table is damaged."
        ) from exc


def experiment_from_row(row: Mapping[Any, Any]) -> Experiment:
    return Experiment(
        experiment_id=str(row["experiment_id"]),
        name=row["name"],
        creation_time=int(row["creation_time"]),
        tags=json.loads(row["tags"]) if row["tags"] else {},
    )


@_entity_row
def run_row(run: EvaluationRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "experiment_id": int(run.experiment_id),
        "name": run.name[:256],
        "status": run.status.value,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "scorers": json.dumps(run.scorers, default=str),
        "judge_models": json.dumps(run.judge_models),
        "usage": json.dumps(run.usage, default=str),
        "row_count": run.row_count,
        "failure": run.failure,
        "plan": None if run.plan is None else json.dumps(run.plan, default=str),
        "dataset": None if run.dataset is None else json.dumps(run.dataset),
    }


def run_from_row(row: Mapping[Any, Any], metrics: dict[str, float]) -> EvaluationRun:
    return EvaluationRun(
        run_id=row["run_id"],
        experiment_id=str(row["experiment_id"]),
        name=row["name"],
        status=RunStatus(row["status"]),
        start_time=int(row["start_time"]),
        end_time=row["end_time"],
        scorers=json.loads(row["scorers"]),
        judge_models=json.loads(row["judge_models"]),
        usage=json.loads(row["usage"]),
        metrics=dict(metrics),
        row_count=int(row["row_count"]),
        failure=row["failure"],
        plan=json.loads(row["plan"]) if row.get("plan") else None,
        dataset=json.loads(row["dataset"]) if row.get("dataset") else None,
    )
