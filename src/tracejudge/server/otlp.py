"""OTLP/HTTP ingestion at ``/v1/traces``: traces from any OpenTelemetry SDK, with no tracejudge code.

Point an app's standard exporter at the server (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=
http://host:5000/v1/traces``); name the experiment with the ``x-tracejudge-experiment`` header
or the resource attribute ``tracejudge.experiment`` (else the default experiment). Spans of one
trace may arrive over several requests and in any order: each request's spans are merged with
what the store already holds of their trace (:mod:`tracejudge.tracing.trace_merge`): the
trace's request, response, timing and state come from its root, and until the root arrives the
trace is in progress. OpenInference and GenAI attributes are mapped onto span types,
inputs, outputs and documents (:mod:`tracejudge.tracing.genai_conventions`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request, Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from tracejudge.entities import Span, Trace
from tracejudge.entities.experiment import DEFAULT_EXPERIMENT_ID
from tracejudge.errors import InvalidArgumentError
from tracejudge.server.metrics import ServerMetrics
from tracejudge.store.base import TraceStore
from tracejudge.tracing.genai_conventions import apply_conventions
from tracejudge.tracing.otel_convert import SpanRecord, assemble_trace, span_from_record
from tracejudge.tracing.otlp_decode import decompress, parse_request, span_records
from tracejudge.tracing.trace_merge import merge_part

EXPERIMENT_HEADER = "x-tracejudge-experiment"
EXPERIMENT_RESOURCE_ATTRIBUTE = "tracejudge.experiment"


def add_otlp_routes(
    app: FastAPI, store: TraceStore, max_body_bytes: int, metrics: ServerMetrics
) -> None:
    """``POST /v1/traces``; a body may decompress to at most ``max_body_bytes``."""

    @app.post("/v1/traces", tags=["OTLP"], response_model=None)
    async def export_traces(request: Request) -> Response:
        """OTLP/HTTP trace export (protobuf or JSON; gzip accepted)."""
        body = await request.body()
        rejected: list[str] = []
        # decoding is CPU work of up to the body limit: off the event loop, which serves the
        # other clients meanwhile
        records = await run_in_threadpool(
            _decoded,
            body,
            request.headers.get("content-encoding"),
            request.headers.get("content-type"),
            max_body_bytes,
            rejected,
        )
        if rejected and not records:  # nothing usable: the request is the client's error
            raise InvalidArgumentError(rejected[0])
        experiment = request.headers.get(EXPERIMENT_HEADER)
        traces = await run_in_threadpool(ingest, store, records, experiment)
        metrics.ingested(traces, len(records))
        answer = ExportTraceServiceResponse()
        if rejected:  # OTLP's partial success: the others are stored, these are named
            answer.partial_success.rejected_spans = len(rejected)
            answer.partial_success.error_message = (
                f"{len(rejected)} span(s) rejected; the first: {rejected[0]}"
            )
        if "json" in (request.headers.get("content-type") or ""):
            return Response(
                json_format.MessageToJson(answer, indent=None), media_type="application/json"
            )
        return Response(answer.SerializeToString(), media_type="application/x-protobuf")


def _decoded(
    body: bytes,
    encoding: str | None,
    content_type: str | None,
    max_body_bytes: int,
    rejected: list[str],
) -> list[tuple[SpanRecord, dict[str, Any]]]:
    parsed = parse_request(decompress(body, encoding, max_body_bytes), content_type)
    return span_records(parsed, rejected)


def ingest(
    store: TraceStore, records: list[tuple[SpanRecord, dict[str, Any]]], experiment: str | None
) -> int:
    """Write the spans, each trace's merged into what the store holds of it (in one step per
    request that no other writer of those traces interleaves with: another request, another
    server process); returns how many of the traces are new."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    homes: dict[str, str | None] = {}
    services: dict[str, str] = {}
    for record, resource in records:
        span = apply_conventions(span_from_record(record))
        by_trace[span.trace_id].append(span)
        homes.setdefault(
            span.trace_id, experiment or _text(resource.get(EXPERIMENT_RESOURCE_ATTRIBUTE))
        )
        service = _text(resource.get("service.name"))
        if service:
            services.setdefault(span.trace_id, service)
    if not by_trace:
        return 0
    experiment_ids: dict[str | None, str] = {None: DEFAULT_EXPERIMENT_ID}
    parts: list[Trace] = []
    for trace_id, spans in by_trace.items():
        home = homes[trace_id]
        if home not in experiment_ids:
            assert home is not None
            experiment_ids[home] = store.get_or_create_experiment(home).experiment_id
        metadata = {"tracejudge.source": "otlp"}
        if trace_id in services:
            metadata["service.name"] = services[trace_id]
        parts.append(assemble_trace(spans, experiment_ids[home], {}, metadata))
    return store.merge_traces(parts, merge_part)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
