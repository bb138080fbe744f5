"""Builders of stored traces for store tests (no tracing SDK involved)."""

from __future__ import annotations

import json
from typing import Any

from tracejudge.entities import (
    Span,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceState,
)
from tracejudge.entities.trace import new_trace_id


def make_trace(
    experiment_id: str = "0",
    timestamp_ms: int = 1_700_000_000_000,
    duration_ms: int | None = 100,
    state: TraceState = TraceState.OK,
    name: str = "answer",
    tags: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    inputs: Any = None,
    outputs: Any = None,
    span_types: tuple[str, ...] = (SpanType.RETRIEVER,),
) -> Trace:
    tid = new_trace_id()
    start_ns = timestamp_ms * 1_000_000
    end_ns = None if duration_ms is None else start_ns + duration_ms * 1_000_000
    inputs = {"question": "q"} if inputs is None else inputs
    outputs = "a" if outputs is None else outputs
    status = SpanStatus(SpanStatusCode.ERROR if state == TraceState.ERROR else SpanStatusCode.OK)
    root = Span(
        tid, "0" * 15 + "1", None, name, SpanType.CHAIN, start_ns, end_ns, status, inputs, outputs
    )
    children = [
        Span(
            tid,
            f"{i + 2:016x}",
            root.span_id,
            f"{kind.lower()}_step",
            kind,
            start_ns,
            end_ns,
            SpanStatus(SpanStatusCode.OK),
            {"i": i},
            {"o": i},
        )
        for i, kind in enumerate(span_types)
    ]
    info = TraceInfo(
        trace_id=tid,
        experiment_id=experiment_id,
        request_time=timestamp_ms,
        execution_duration=duration_ms,
        state=state,
        name=name,
        request_preview=json.dumps(inputs),
        response_preview=str(outputs),
        tags=dict(tags or {}),
        trace_metadata=dict(metadata or {}),
    )
    return Trace(info, TraceData([root, *children], json.dumps(inputs), json.dumps(outputs)))
