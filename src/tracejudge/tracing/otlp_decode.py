"""Reading an OTLP/HTTP trace export (protobuf or JSON, optionally gzip) into span records.

Any OpenTelemetry SDK's standard OTLP exporter, in any language, sends this. The records are
the same :class:`~tracejudge.tracing.otel_convert.SpanRecord` tuples the tracejudge SDK makes
from its own spans, so one conversion serves both.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.trace import StatusCode

from tracejudge.errors import InvalidArgumentError, RequestTooLargeError
from tracejudge.tracing.otel_convert import SpanRecord

_STATUS = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


MAX_GZIP_MEMBERS = 64
"""Gzip members a body may hold (an exporter sends one): each costs a decompressor, so a body
of thousands of tiny members would cost CPU out of proportion to its size."""


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body without its ``Content-Encoding`` (gzip or deflate), at most ``max_bytes`` long."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidArgumentError(f"Unsupported Content-Encoding {encoding!r}; use gzip.")
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:  # a gzip body may be several members one after another (RFC 1952)
            if len(parts) == MAX_GZIP_MEMBERS:
                raise InvalidArgumentError(
                    f"The gzip body has more than {MAX_GZIP_MEMBERS} members; send one."
                )
            inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
            parts.append(inflater.decompress(rest, max_bytes + 1 - size))
            size += len(parts[-1])
            if size > max_bytes:
                raise RequestTooLargeError(
                    f"The decompressed body is over the server's limit of {max_bytes:,} bytes."
                )
            if not inflater.eof:
                raise InvalidArgumentError(f"The {encoding} body is cut short.")
            rest = inflater.unused_data
            if encoding != "gzip" and rest:
                raise InvalidArgumentError(f"The {encoding} body has data after its end.")
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InvalidArgumentError(f"The {encoding} body does not decompress: {exc}") from None
    return b"".join(parts)


def parse_request(body: bytes, content_type: str | None) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` from protobuf or OTLP/JSON (whose ids are hex)."""
    kind = (content_type or "application/x-protobuf").split(";")[0].strip().lower()
    request = ExportTraceServiceRequest()
    if kind in ("application/x-protobuf", "application/protobuf"):
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise InvalidArgumentError(f"The body is not an OTLP protobuf message: {exc}") from None
        return request
    if kind == "application/json":
        try:
            data = json.loads(body)
            _hex_ids_to_base64(data)
            # OTLP receivers must ignore fields they do not know (newer SDKs add some)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (
            ValueError,
            TypeError,
            AttributeError,
            RecursionError,
            json_format.ParseError,
        ) as exc:
            # TypeError/AttributeError: JSON that is not an object (``null``, ``5``);
            # RecursionError: nesting deeper than any OTLP message
            raise InvalidArgumentError(
                f"The body is not OTLP/JSON: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        return request
    raise InvalidArgumentError(
        f"Unsupported Content-Type {content_type!r}: send application/x-protobuf or application/json."
    )


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON reader expects base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str) and value:
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise InvalidArgumentError(f"{key} {value!r} is not hex.") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode()
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _id(raw: bytes, size: int, what: str) -> int:
    if len(raw) != size or not any(raw):
        raise InvalidArgumentError(f"A span has an invalid {what} ({len(raw)} bytes).")
    return int.from_bytes(raw, "big")


def span_records(
    request: ExportTraceServiceRequest, rejected: list[str] | None = None
) -> list[tuple[SpanRecord, dict[str, Any]]]:
    """Every span of the request, with its resource's attributes (``service.name``, …). A span
    with invalid ids is an InvalidArgumentError, or, given ``rejected``, is left out with its
    reason added there (OTLP's partial success: the request's other spans still count)."""
    out = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    record = _record(span)
                except InvalidArgumentError as exc:
                    if rejected is None:
                        raise
                    rejected.append(str(exc))
                    continue
                out.append((record, resource))
    return out


_MAX_TIME_NS = 2**63 - 1
"""The last nanosecond a signed 64-bit column holds (the year 2262)."""


def _times(span: Any) -> tuple[int, int | None]:
    """The span's start and end (None: not ended); InvalidArgumentError for a time no column
    holds or an end before the start (a duration no one can sort by)."""
    start, end = int(span.start_time_unix_nano), int(span.end_time_unix_nano) or None
    if start > _MAX_TIME_NS or (end is not None and end > _MAX_TIME_NS):
        raise InvalidArgumentError(f"Span {span.name!r} has a time after the year 2262.")
    if end is not None and end < start:
        raise InvalidArgumentError(f"Span {span.name!r} ends before it starts.")
    return start, end


def _record(span: Any) -> SpanRecord:
    parent = span.parent_span_id
    start, end = _times(span)
    return SpanRecord(
        trace_id=_id(span.trace_id, 16, "trace id"),
        span_id=_id(span.span_id, 8, "span id"),
        parent_id=_id(parent, 8, "parent span id") if parent else None,
        name=span.name or "span",
        start_time_ns=start,
        end_time_ns=end,
        status_code=_STATUS.get(span.status.code, StatusCode.UNSET),
        status_description=span.status.message or None,
        attributes=attributes(span.attributes) or None,
        events=tuple(
            (e.name, int(e.time_unix_nano), attributes(e.attributes)) for e in span.events
        ),
    )
