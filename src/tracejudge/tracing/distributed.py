"""Distributed tracing: one trace across services, through a W3C ``traceparent`` header.

The caller sends the headers of its current span with its request to another service
(:func:`get_tracing_context_headers`); the callee records its spans inside
:func:`continue_trace` with the headers it received, and they are stored in the caller's trace,
its first span a child of the caller's span. Both services must write to the same store (a
tracking server or the same database). Each writes its part when its part ends, and the store
merges the parts (:mod:`tracejudge.tracing.trace_merge`), so either may land first.

MLflow 3's names for the two calls are kept as aliases, so code written for it runs as is.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracejudge.tracing.fluent import get_current_active_span
from tracejudge.tracing.live_span import NoOpSpan
from tracejudge.tracing.processor import continued_parent
from tracejudge.tracing.provider import get_assembler

logger = logging.getLogger("tracejudge.tracing")

_PROPAGATOR = TraceContextTextMapPropagator()


def get_tracing_context_headers() -> dict[str, str]:
    """The ``traceparent`` header (W3C Trace Context) of the current span, to send with a
    request to another service; ``{}`` outside a span. The trace is then written as shared:
    merged with the parts other services write, whichever lands first."""
    span = get_current_active_span()
    if span is None or isinstance(span, NoOpSpan):
        return {}
    try:
        context = span.otel_span.get_span_context()
        buffer = get_assembler().buffer_for(context.trace_id, context.span_id)
        if buffer is not None:
            buffer.shared = True
        stored = buffer.trace_id if buffer is not None else context.trace_id
        return {"traceparent": f"00-{stored:032x}-{context.span_id:016x}-01"}
    except Exception:  # never break the caller
        logger.exception("tracejudge could not make the tracing headers")
        return {}


@contextlib.contextmanager
def continue_trace(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Record the spans begun in this block in the trace of the caller that sent ``headers``
    (an incoming request's headers, any letter case). Without a valid ``traceparent`` the
    block runs as it would anyway, its spans in a trace of their own (a warning is logged)."""
    parent = _remote_parent(headers)
    if parent is None:
        yield
        return
    token = otel_context.attach(otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent)))
    marked = continued_parent.set(parent)
    try:
        yield
    finally:
        continued_parent.reset(marked)
        otel_context.detach(token)


def _remote_parent(headers: Mapping[str, str] | None) -> otel_trace.SpanContext | None:
    context = otel_trace.INVALID_SPAN_CONTEXT
    try:
        carrier = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        context = otel_trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    except Exception:  # headers of any shape: never break the callee
        carrier = {}
    if not context.is_valid:
        logger.warning(
            "tracejudge.continue_trace: no valid traceparent header (got %s); the spans start "
            "a trace of their own",
            sorted(carrier) or "no headers",
        )
        return None
    return context


get_tracing_context_headers_for_http_request = get_tracing_context_headers
"""MLflow 3's name."""
set_tracing_context_from_http_request_headers = continue_trace
"""MLflow 3's name."""
