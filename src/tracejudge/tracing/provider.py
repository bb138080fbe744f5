"""tracejudge's own OpenTelemetry TracerProvider.

It is separate from the global provider so that tracing an app with tracejudge never changes
what the app's own OpenTelemetry set-up exports. tracejudge's own spans skip the SDK
(:mod:`.recording_span`) unless another processor is attached; spans that other libraries
start on this provider go through the SDK and the same assembler. To also send tracejudge
spans elsewhere, add a processor:
``tracejudge.tracing.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))``.
"""

from __future__ import annotations

import threading

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from tracejudge.entities.ids import time_ordered_int
from tracejudge.tracing.processor import TraceAssembler
from tracejudge.tracing.recording_span import RecordingSpan

_lock = threading.Lock()
_provider: TracerProvider | None = None
_assembler = TraceAssembler()
_tracer: otel_trace.Tracer | None = None
_mirror_attributes = False


class TimeOrderedIdGenerator(RandomIdGenerator):
    """Trace ids that sort by start time (:mod:`tracejudge.entities.ids`: they keep the
    store's writes at the right edge of its indexes); span ids stay OpenTelemetry's random
    ones, since a span's row is keyed by its trace id first. The rightmost 80 bits of a trace
    id are random, so the W3C random-trace-id flag the parent class sets still holds."""

    def generate_trace_id(self) -> int:
        return time_ordered_int()


def get_tracer_provider() -> TracerProvider:
    global _provider
    if _provider is None:
        with _lock:
            if _provider is None:
                # Every trace is kept (no sampling), so the plain ALWAYS_ON sampler is enough and
                # cheaper than the default parent-based one.
                provider = TracerProvider(
                    sampler=ALWAYS_ON,
                    resource=Resource.create({"service.name": "tracejudge"}),
                    id_generator=TimeOrderedIdGenerator(),
                )
                provider.add_span_processor(_assembler)
                _provider = provider
    return _provider


def get_tracer() -> otel_trace.Tracer:
    global _tracer
    if _tracer is None:
        _tracer = get_tracer_provider().get_tracer("tracejudge")
    return _tracer


def get_assembler() -> TraceAssembler:
    return _assembler


def start_otel_span(name: str) -> otel_trace.Span:
    """A new span under the current one: tracejudge's own :class:`RecordingSpan`, or an SDK
    span while another span processor is attached (it must see every span)."""
    if _mirror_attributes:
        return get_tracer().start_span(name)
    return RecordingSpan.start(name, _assembler)


def add_span_processor(processor: SpanProcessor) -> None:
    """Send tracejudge's spans to another processor too, e.g. ``BatchSpanProcessor(OTLPSpanExporter())``.

    From then on, span types, inputs, outputs and attributes are also written as OpenTelemetry
    attributes (``tracejudge.spanInputs``…), so the other processor sees everything.
    """
    global _mirror_attributes
    get_tracer_provider().add_span_processor(processor)
    _mirror_attributes = True


def attributes_mirrored() -> bool:
    return _mirror_attributes
