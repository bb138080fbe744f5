"""The span processor that gathers the spans of each trace and hands finished traces to export.

It keeps, per live trace, the finished spans and what ``update_current_trace`` set; when the
root span ends, the whole trace goes to the exporter. Each tracejudge span deposits its
payload (type, inputs, outputs, attributes) just before it ends. Conversion to entities
happens in the writer thread, so the caller pays only for a few dict and list operations.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan

from tracejudge.entities.trace import trace_id_from_otel
from tracejudge.store import get_tracking_uri
from tracejudge.tracing.experiment import active_experiment_name
from tracejudge.tracing.export import ExportItem, get_exporter
from tracejudge.tracing.otel_convert import SpanRecord, record_from_otel
from tracejudge.tracing.payload import SpanPayload

logger = logging.getLogger("tracejudge.tracing")


@dataclass
class TraceBuffer:
    """What is known of one live trace until its root span ends."""

    store_uri: str
    experiment_name: str | None
    spans: list[SpanRecord] = field(default_factory=list)
    payloads: dict[int, SpanPayload] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


class TraceAssembler(SpanProcessor):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, TraceBuffer] = {}
        self._written: dict[int, tuple[str, str | None]] = {}
        self._orphan_payloads: dict[int, SpanPayload] = {}
        self.last_trace_id: str | None = None
        self._last_in_thread = threading.local()

    def last_trace_id_in_thread(self) -> str | None:
        """The trace that finished most recently in the calling thread."""
        return getattr(self._last_in_thread, "trace_id", None)

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        if span.parent is not None:
            return
        try:
            self._live[span.context.trace_id] = TraceBuffer(
                get_tracking_uri(), active_experiment_name()
            )
        except Exception:  # never break the user's code
            logger.exception("tracejudge could not start a trace")

    def deposit(self, trace_id: int, span_id: int, payload: SpanPayload) -> None:
        """Keep a span's payload until the trace is exported (called just before the span ends)."""
        buffer = self._live.get(trace_id)
        if buffer is not None:
            buffer.payloads[span_id] = payload
        elif trace_id in self._written:
            self._orphan_payloads[span_id] = payload

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._on_end(span)
        except Exception:
            logger.exception("tracejudge could not record a finished span")

    def _on_end(self, span: ReadableSpan) -> None:
        # Single dict and list operations are atomic under the GIL; this runs for every span,
        # so it takes no lock.
        record = record_from_otel(span)
        trace_id = record.trace_id
        if record.parent_id is None:
            buffer = self._live.pop(trace_id, None)
            if buffer is not None:
                buffer.spans.append(record)
                self._finish(trace_id, buffer)
            return
        buffer = self._live.get(trace_id)
        if buffer is not None:
            buffer.spans.append(record)
            return
        written = self._written.get(trace_id)
        if written is not None:  # a child that outlived its root: append it to the stored trace
            uri, experiment = written
            payload = self._orphan_payloads.pop(record.span_id, None)
            get_exporter().submit(
                ExportItem(
                    uri,
                    experiment,
                    [record],
                    payloads={record.span_id: payload} if payload else {},
                    late_trace_id=trace_id_from_otel(trace_id),
                )
            )

    def _finish(self, otel_trace_id: int, buffer: TraceBuffer) -> None:
        with self._lock:
            self._written[otel_trace_id] = (buffer.store_uri, buffer.experiment_name)
            if len(self._written) > 10_000:  # remember recent traces only, for late spans
                for key in list(self._written)[:5_000]:
                    del self._written[key]
        self.last_trace_id = trace_id_from_otel(otel_trace_id)
        self._last_in_thread.trace_id = self.last_trace_id
        get_exporter().submit(
            ExportItem(
                buffer.store_uri,
                buffer.experiment_name,
                buffer.spans,
                buffer.payloads,
                buffer.tags,
                buffer.metadata,
                buffer.overrides,
            )
        )

    def buffer_for(self, otel_trace_id: int) -> TraceBuffer | None:
        with self._lock:
            return self._live.get(otel_trace_id)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return get_exporter().flush(timeout_millis / 1000)
