"""The span a user holds while it is open: a thin wrapper over an OpenTelemetry span
(tracejudge's own :class:`~.recording_span.RecordingSpan`, or an SDK span when another span
processor is attached).

Every setter swallows its own failures (logged), because tracing must never break the
traced application.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace import Status, StatusCode

from tracejudge.entities import SpanEvent, SpanStatusCode, SpanType
from tracejudge.entities._json import dumps
from tracejudge.entities.trace import trace_id_from_otel
from tracejudge.tracing import constants as c
from tracejudge.tracing.payload import SpanPayload
from tracejudge.tracing.provider import attributes_mirrored, get_assembler

logger = logging.getLogger("tracejudge.tracing")

_STACK_ATTRIBUTE = "__tracejudge_stack__"

_OTEL_STATUS = {
    SpanStatusCode.OK: StatusCode.OK,
    SpanStatusCode.ERROR: StatusCode.ERROR,
    SpanStatusCode.UNSET: StatusCode.UNSET,
}
_PRIMITIVE = (str, bool, int, float)
NO_INPUTS: Any = object()
"""Marks a span started without inputs (``None`` is a valid input)."""


def encode_attributes(attributes: Any) -> dict[str, str]:
    """User attributes as JSON text (reserved tracejudge keys are dropped); never raises.

    Anything but a mapping is logged and ignored: tracing must not break the traced call.
    """
    if not attributes:
        return {}
    if not isinstance(attributes, Mapping):
        logger.warning(
            "tracejudge: span attributes must be a dict, not %s; ignored", type(attributes).__name__
        )
        return {}
    encoded = {}
    for key, value in attributes.items():
        name = safe_str(key)
        if name is not None and name not in c.RESERVED_ATTRIBUTES:
            encoded[name] = dumps(value)
    return encoded


def safe_str(value: Any) -> str | None:
    """``str(value)``, or ``None`` (logged) when its ``__str__`` raises."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception as exc:
        logger.warning(
            "tracejudge: a %s whose str() raises (%s) was ignored", type(value).__name__, exc
        )
        return None


def _event_attribute(value: Any) -> Any:
    """OpenTelemetry event attributes must be primitives; anything else is stored as JSON."""
    return value if isinstance(value, _PRIMITIVE) else dumps(value)


class LiveSpan:
    """An open span: set its inputs, outputs, attributes and events, then it ends with its block."""

    __slots__ = (
        "_inputs",
        "_otel",
        "_outputs",
        "_payload",
        "_stored_trace_id",
        "context_before",
        "outputs_set",
    )

    def __init__(
        self,
        otel_span: OtelSpan,
        span_type: str = SpanType.UNKNOWN,
        inputs: Any = NO_INPUTS,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Wrap ``otel_span``; ``attributes`` are already encoded (:func:`encode_attributes`)."""
        self._otel = otel_span
        has_inputs = inputs is not NO_INPUTS
        self._inputs: Any = inputs if has_inputs else None
        self._outputs: Any = None
        self.outputs_set = False
        self.context_before: Any = None
        """The OpenTelemetry context its block replaced (``fluent._restores``)."""
        self._payload = SpanPayload(
            span_type, dumps(inputs) if has_inputs else None, dict(attributes) if attributes else {}
        )
        # the payload is with the trace from the start, so the span's inputs and outputs are
        # there however it ends (by this block, or through the OpenTelemetry API first)
        self._stored_trace_id: int | None = None
        try:
            context = otel_span.get_span_context()
            self._stored_trace_id = get_assembler().deposit(
                context.trace_id, context.span_id, self._payload
            )
        except Exception:
            logger.exception("tracejudge could not record a span's payload")

    # identity ---------------------------------------------------------------
    @property
    def otel_span(self) -> OtelSpan:
        """The OpenTelemetry span behind this one."""
        return self._otel

    @property
    def trace_id(self) -> str:
        """The id of the trace as stored (for a span under another SDK's span, not the
        OpenTelemetry trace id: see :mod:`tracejudge.tracing.processor`)."""
        stored = self._stored_trace_id
        if stored is None:
            context = self._otel.get_span_context()
            stored = get_assembler().stored_trace_id(context.trace_id, context.span_id)
        return trace_id_from_otel(stored)

    @property
    def otel_trace_id(self) -> int:
        return self._otel.get_span_context().trace_id

    @property
    def span_id(self) -> str:
        return f"{self._otel.get_span_context().span_id:016x}"

    @property
    def parent_id(self) -> str | None:
        parent = getattr(self._otel, "parent", None)
        return f"{parent.span_id:016x}" if parent is not None else None

    @property
    def name(self) -> str:
        return getattr(self._otel, "name", "")

    @property
    def span_type(self) -> str:
        return self._payload.span_type

    @property
    def inputs(self) -> Any:
        return self._inputs

    @property
    def outputs(self) -> Any:
        return self._outputs

    # setters ----------------------------------------------------------------
    def set_inputs(self, inputs: Any) -> None:
        self._inputs = inputs
        self._payload.inputs = dumps(inputs)  # encoded now: later mutation must not change it

    def set_outputs(self, outputs: Any) -> None:
        self._outputs = outputs
        self.outputs_set = True
        self._payload.outputs = dumps(outputs)

    def set_attribute(self, key: str, value: Any) -> None:
        name = safe_str(key)
        if name is None:
            return
        if name in c.RESERVED_ATTRIBUTES:
            logger.warning("tracejudge: %s is reserved (use set_inputs/set_outputs); ignored", name)
            return
        self._payload.attributes[name] = dumps(value)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self._payload.attributes.update(encode_attributes(attributes))

    def set_span_type(self, span_type: str) -> None:
        name = safe_str(span_type)
        if name is not None:
            self._payload.span_type = name

    def add_event(self, event: SpanEvent | str, attributes: dict[str, Any] | None = None) -> None:
        try:
            if isinstance(event, SpanEvent):
                name, attrs, ts = event.name, event.attributes, event.timestamp_ns
            else:
                name, attrs, ts = str(event), attributes or {}, time.time_ns()
            self._otel.add_event(name, {k: _event_attribute(v) for k, v in attrs.items()}, ts)
        except Exception:
            logger.exception("tracejudge could not add a span event")

    def set_status(self, status: SpanStatusCode | str, description: str = "") -> None:
        try:
            code = SpanStatusCode(
                status.value if isinstance(status, SpanStatusCode) else str(status).upper()
            )
            self._otel.set_status(Status(_OTEL_STATUS[code], description or None))
        except Exception:
            logger.exception("tracejudge could not set span status %r", status)

    def record_exception(self, exc: BaseException) -> None:
        """Add an ``exception`` event (type, message, stack trace) and set status ERROR."""
        kind = type(exc).__name__
        message = safe_str(exc)
        if message is None:
            message = f"<{kind} whose str() raises>"
        try:
            self._otel.set_status(Status(StatusCode.ERROR, f"{kind}: {message}"))
            try:  # a message may still fail in the formatting of the stack (its __str__ again)
                stack = _stack_text(exc)
            except Exception:
                stack = f"{kind}: {message}"
            self._otel.add_event(
                c.EXCEPTION_EVENT,
                {
                    "exception.type": kind,
                    "exception.message": message,
                    "exception.stacktrace": stack,
                },
            )
        except Exception:
            logger.exception("tracejudge could not record an exception")

    def end(self, end_time_ns: int | None = None) -> None:
        try:
            if attributes_mirrored() and self._otel.is_recording():
                payload = self._payload
                self._otel.set_attributes(payload.as_otel_attributes(dumps(payload.span_type)))
            self._otel.end(end_time_ns)  # a second end (after one through OTel) does nothing
        except Exception:
            logger.exception("tracejudge could not end a span")


class NoOpSpan(LiveSpan):
    """Stands in when a span could not be started, so user code calling span methods still runs."""

    __slots__ = ()

    def __init__(self) -> None:  # no OpenTelemetry span behind it
        self._inputs = None
        self._outputs = None
        self._payload = SpanPayload(SpanType.UNKNOWN, None, {})
        self.outputs_set = False
        self._stored_trace_id = None
        self.context_before = None

    @property
    def trace_id(self) -> str:
        return ""

    @property
    def span_id(self) -> str:
        return ""

    @property
    def parent_id(self) -> str | None:
        return None

    @property
    def name(self) -> str:
        return ""

    def set_inputs(self, inputs: Any) -> None:
        self._inputs = inputs

    def set_outputs(self, outputs: Any) -> None:
        self._outputs = outputs
        self.outputs_set = True

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_span_type(self, span_type: str) -> None:
        return None

    def add_event(self, event: SpanEvent | str, attributes: dict[str, Any] | None = None) -> None:
        return None

    def set_status(self, status: SpanStatusCode | str, description: str = "") -> None:
        return None

    def record_exception(self, exc: BaseException) -> None:
        return None

    def end(self, end_time_ns: int | None = None) -> None:
        return None


def _stack_text(exc: BaseException) -> str:
    """The exception's stack trace as the first span to record it saw it: from that span's
    frame down to the raise. The spans it rises through afterwards record the same text (their
    own place in the call path is the span tree): formatting the traceback again at every
    level cost time and stored text growing with the square of the depth (17 s for an error
    rising through 1,000 levels of a traced recursion)."""
    cached = exc.__dict__.get(_STACK_ATTRIBUTE) if hasattr(exc, "__dict__") else None
    if isinstance(cached, str):
        return cached
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    with contextlib.suppress(Exception):  # an exception type that takes no attributes
        exc.__dict__[_STACK_ATTRIBUTE] = text
    return text
