"""OTLP/HTTP ingestion at ``/v1/traces``: traces from any OpenTelemetry SDK, with no tracejudge code.

Point an app's standard exporter at the server (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=
http://host:5000/v1/traces``); name the experiment with the ``x-tracejudge-experiment`` header
or the resource attribute ``tracejudge.experiment`` (else the default experiment). Spans of one
trace may arrive over several requests and in any order: each request's spans are merged with
what the store already holds of their trace, and the trace is assembled again, its request and
response taken from its root. OpenInference and GenAI attributes are mapped onto span types,
inputs, outputs and documents (:mod:`tracejudge.tracing.genai_conventions`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request, Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from tracejudge.entities import Span, Trace
from tracejudge.entities.experiment import DEFAULT_EXPERIMENT_ID
from tracejudge.entities.trace import trace_id_from_otel
from tracejudge.errors import InvalidArgumentError
from tracejudge.server.metrics import ServerMetrics
from tracejudge.store.base import TraceStore
from tracejudge.tracing.genai_conventions import apply_conventions
from tracejudge.tracing.otel_convert import SpanRecord, assemble_trace, span_from_record
from tracejudge.tracing.otlp_decode import decompress, parse_request, span_records

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


_STRIPES = [threading.Lock() for _ in range(64)]
"""Requests carrying spans of the same trace merge one after the other (a read-merge-write):
these locks within a process, the store's ``trace_locks`` across processes on PostgreSQL."""


def ingest(
    store: TraceStore, records: list[tuple[SpanRecord, dict[str, Any]]], experiment: str | None
) -> int:
    """Write the spans, merged into their traces; returns how many of the traces are new."""
    trace_ids = {trace_id_from_otel(record.trace_id) for record, _ in records}
    stripes = sorted({hash(t) % len(_STRIPES) for t in trace_ids})
    with contextlib.ExitStack() as held:
        for index in stripes:  # always in the same order: no deadlock between requests
            held.enter_context(_STRIPES[index])
        across_processes = getattr(store, "trace_locks", None)  # PostgreSQL: other replicas too
        if across_processes is not None:
            held.enter_context(across_processes(trace_ids))
        return _ingest(store, records, experiment)


def _ingest(
    store: TraceStore, records: list[tuple[SpanRecord, dict[str, Any]]], experiment: str | None
) -> int:
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
    # what the store already holds of these traces, in one round trip
    existing = {t.info.trace_id: t for t in store.get_traces(list(by_trace))}
    experiment_ids: dict[str | None, str] = {None: DEFAULT_EXPERIMENT_ID}
    traces: list[Trace] = []
    for trace_id, spans in by_trace.items():
        home = homes[trace_id]
        if home not in experiment_ids:
            assert home is not None
            experiment_ids[home] = store.get_or_create_experiment(home).experiment_id
        traces.append(
            _merged(
                existing.get(trace_id),
                spans,
                experiment_ids[home],
                services.get(trace_id),
            )
        )
    store.log_traces(traces)
    return len(by_trace) - len(existing)


def _merged(
    existing: Trace | None, spans: list[Span], experiment_id: str, service: str | None
) -> Trace:
    known: dict[str, Span] = {}
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    if existing is not None:
        known = {s.span_id: s for s in existing.data.spans}
        tags, metadata = dict(existing.info.tags), dict(existing.info.trace_metadata)
        experiment_id = existing.info.experiment_id  # a trace stays where it first landed
    for span in spans:
        known[span.span_id] = span
    if service:
        metadata.setdefault("service.name", service)
    metadata.setdefault("tracejudge.source", "otlp")
    return assemble_trace(list(known.values()), experiment_id, tags, metadata)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
