"""Turning finished OpenTelemetry spans into tracejudge entities.

The tracing SDK uses this for its own spans; an OTLP ingest endpoint can use it for spans
from any OpenTelemetry SDK (attributes that are not JSON are kept as plain strings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from tracejudge.entities import (
    Span,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceState,
)
from tracejudge.entities._json import dumps
from tracejudge.entities.chat_payloads import (
    completion_content,
    content_text,
    last_user_message,
    output_text,
    prompt_messages,
)
from tracejudge.entities.trace import trace_id_from_otel
from tracejudge.tracing import constants as c
from tracejudge.tracing.payload import SpanPayload

_STATUS = {
    StatusCode.UNSET: SpanStatusCode.UNSET,
    StatusCode.OK: SpanStatusCode.OK,
    StatusCode.ERROR: SpanStatusCode.ERROR,
}


def decode_attribute(value: Any) -> Any:
    """Attribute values are JSON text when tracejudge wrote them; anything else is kept as is."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    if isinstance(value, tuple):
        return list(value)
    return value


def decode_foreign_attribute(value: Any) -> Any:
    """An attribute of a span that may come from any SDK: a string is decoded only when it is
    a JSON object, array or quoted string (what tracejudge writes for those); ``"123"``,
    ``"true"`` or ``"null"`` from another SDK are strings and stay strings."""
    if isinstance(value, str) and value[:1] not in ("{", "[", '"'):
        return value
    return decode_attribute(value)


class SpanRecord(NamedTuple):
    """The fields of a finished OpenTelemetry span that a trace needs, as one flat tuple.

    The processor keeps these instead of the SDK's ReadableSpan objects until the trace is
    written: a tuple of plain values is all but free for the garbage collector, whereas
    ReadableSpans (and what they reference) make every collection slower for the whole app.
    """

    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    start_time_ns: int
    end_time_ns: int | None
    status_code: StatusCode
    status_description: str | None
    attributes: dict[str, Any] | None
    events: tuple[tuple[str, int, dict[str, Any]], ...]


def record_from_otel(otel: ReadableSpan) -> SpanRecord:
    """The record of a finished SDK span (tracejudge's own spans make theirs directly:
    :mod:`.recording_span`)."""
    ctx = otel.context
    assert ctx is not None
    attributes = otel.attributes
    # Reading ``events`` copies a locked list; most spans have none, so look before copying.
    raw_events = getattr(otel, "_events", None)
    events = otel.events if raw_events is None or len(raw_events) else ()
    return SpanRecord(
        ctx.trace_id,
        ctx.span_id,
        otel.parent.span_id if otel.parent else None,
        otel.name,
        otel.start_time or 0,
        otel.end_time,
        otel.status.status_code,
        otel.status.description,
        dict(attributes) if attributes else None,
        tuple((e.name, e.timestamp, dict(e.attributes or {})) for e in events),
    )


def span_from_record(record: SpanRecord, payload: SpanPayload | None = None) -> Span:
    """A Span entity; ``payload`` is what a tracejudge span carried (type, inputs, outputs…)."""
    raw = dict(record.attributes or {})
    reserved = {key: raw.pop(key, None) for key in c.RESERVED_ATTRIBUTES}  # JSON, tracejudge's
    # the span's own OpenTelemetry attributes (any SDK's), then what tracejudge wrote (JSON)
    attrs = {k: decode_foreign_attribute(v) for k, v in raw.items()}
    if payload is not None:
        attrs.update((k, decode_attribute(v)) for k, v in payload.attributes.items())
        for key in c.RESERVED_ATTRIBUTES:
            attrs.pop(key, None)
        span_type: Any = payload.span_type
        inputs = None if payload.inputs is None else orjson.loads(payload.inputs)
        outputs = None if payload.outputs is None else orjson.loads(payload.outputs)
    else:
        inputs = decode_attribute(reserved[c.SPAN_INPUTS])
        outputs = decode_attribute(reserved[c.SPAN_OUTPUTS])
        span_type = decode_attribute(reserved[c.SPAN_TYPE]) or SpanType.UNKNOWN
    code = _STATUS[record.status_code]
    if code == SpanStatusCode.UNSET and record.end_time_ns is not None:
        code = SpanStatusCode.OK
    return Span(
        trace_id=trace_id_from_otel(record.trace_id),
        span_id=f"{record.span_id:016x}",
        parent_id=None if record.parent_id is None else f"{record.parent_id:016x}",
        name=record.name,
        span_type=str(span_type),
        start_time_ns=record.start_time_ns,
        end_time_ns=record.end_time_ns,
        status=SpanStatus(code, record.status_description or ""),
        inputs=inputs,
        outputs=outputs,
        attributes=attrs,
        events=[
            SpanEvent(name, ts, {k: decode_foreign_attribute(v) for k, v in ev_attrs.items()})
            for name, ts, ev_attrs in record.events
        ],
    )


def span_from_otel(otel: ReadableSpan, payload: SpanPayload | None = None) -> Span:
    """A Span from a finished OpenTelemetry span (from tracejudge or any other SDK)."""
    return span_from_record(record_from_otel(otel), payload)


def preview(value: Any) -> str | None:
    """A short human-readable form of a request or response: the last user message of a chat
    or Responses API request, the answer of a chat completion or a Responses API response."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if (found := _chat_text(value)) is not None:
            return found
        if len(value) == 1:
            return preview(next(iter(value.values())))
    return dumps(value)


def _chat_text(value: Mapping[str, Any]) -> str | None:
    messages = prompt_messages(value)
    user = last_user_message(messages) if messages is not None else None
    if user is not None:
        content = user.get("content")
        return content_text(content) or str(content)
    answer = completion_content(value)
    if answer is not None:
        return content_text(answer) or str(answer)
    return output_text(value.get("output"))


def _sum_token_usage(spans: Sequence[Span]) -> dict[str, int] | None:
    totals: dict[str, int] = {}
    for span in spans:
        usage = span.attributes.get(c.CHAT_TOKEN_USAGE)
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
    return totals or None


def assemble_trace(
    spans: Sequence[Span],
    experiment_id: str,
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Trace:
    """Build a Trace from all spans of one trace; the root span gives request, response and timing.

    ``overrides`` holds what ``update_current_trace`` set: state, previews, client_request_id.
    """
    overrides = overrides or {}
    root = next((s for s in spans if s.parent_id is None), None) or min(
        spans, key=lambda s: s.start_time_ns
    )
    end = root.end_time_ns
    state = TraceState.ERROR if root.status.status_code == SpanStatusCode.ERROR else TraceState.OK
    if end is None:
        state = TraceState.IN_PROGRESS
    if overrides.get("state"):
        state = TraceState(overrides["state"])
    meta = dict(metadata or {})
    usage = _sum_token_usage(spans)
    if usage:
        meta.setdefault(c.TRACE_TOKEN_USAGE, json.dumps(usage))
    request = None if root.inputs is None else dumps(root.inputs)
    response = None if root.outputs is None else dumps(root.outputs)
    info = TraceInfo(
        trace_id=root.trace_id,
        experiment_id=experiment_id,
        request_time=root.start_time_ns // 1_000_000,
        execution_duration=None if end is None else (end - root.start_time_ns) // 1_000_000,
        state=state,
        name=root.name,
        request_preview=overrides.get("request_preview") or preview(root.inputs),
        response_preview=overrides.get("response_preview") or preview(root.outputs),
        client_request_id=overrides.get("client_request_id"),
        trace_metadata=meta,
        tags=dict(tags or {}),
    )
    return Trace(info, TraceData(list(spans), request, response))
