"""The tracing SDK: spans on OpenTelemetry, background export, search and assessments."""

from tracejudge.tracing.client import Client, delete_traces, search_traces, trace_stats
from tracejudge.tracing.distributed import (
    continue_trace,
    get_tracing_context_headers,
    get_tracing_context_headers_for_http_request,
    set_tracing_context_from_http_request_headers,
)
from tracejudge.tracing.experiment import get_experiment_by_name, set_experiment
from tracejudge.tracing.export import ExportStats
from tracejudge.tracing.fluent import (
    flush,
    get_active_trace_id,
    get_current_active_span,
    get_export_stats,
    get_last_active_trace_id,
    start_span,
    trace,
    update_current_trace,
)
from tracejudge.tracing.live_span import LiveSpan, NoOpSpan
from tracejudge.tracing.provider import add_span_processor, get_tracer_provider
from tracejudge.tracing.sampling import keep_every_trace
from tracejudge.tracing_switch import tracing_disabled

__all__ = [
    "Client",
    "ExportStats",
    "LiveSpan",
    "NoOpSpan",
    "add_span_processor",
    "continue_trace",
    "delete_traces",
    "flush",
    "get_active_trace_id",
    "get_current_active_span",
    "get_experiment_by_name",
    "get_export_stats",
    "get_last_active_trace_id",
    "get_tracer_provider",
    "get_tracing_context_headers",
    "get_tracing_context_headers_for_http_request",
    "keep_every_trace",
    "search_traces",
    "set_experiment",
    "set_tracing_context_from_http_request_headers",
    "start_span",
    "trace",
    "trace_stats",
    "tracing_disabled",
    "update_current_trace",
]
