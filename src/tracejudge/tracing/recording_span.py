"""tracejudge's own OpenTelemetry span: the API's ``Span``, without the SDK's machinery.

An OpenTelemetry SDK span costs about 12 µs in the caller's thread (sampler, id generator,
locked attribute and event containers, a processor pipeline, and a ``ReadableSpan`` copy at
its end), more than everything tracejudge does around it. A tracejudge span needs none of
that: its payload lives beside it (:mod:`.payload`) and its end goes straight to the trace
assembler as a :class:`~.otel_convert.SpanRecord`. This class implements the OpenTelemetry
API ``Span``, so it is the current span in OpenTelemetry's context like any other: the app's
own instrumentation nests under it and sees its ids, and ``trace.get_current_span()
.set_attribute(...)`` records on it. When another span processor is attached
(:func:`~.provider.add_span_processor`), spans go through the SDK again so that it sees them.
"""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from tracejudge.entities.ids import time_ordered_int
from tracejudge.tracing.otel_convert import SpanRecord
from tracejudge.tracing.processor import TraceAssembler

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # every trace is kept


class RecordingSpan(otel_trace.Span):
    """A span that records into tracejudge's trace assembler (started by :meth:`start`)."""

    __slots__ = (
        "_assembler",
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_name",
        "_parent",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        assembler: TraceAssembler,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._assembler = assembler
        self._start_time = time.time_ns()
        self._end_time: int | None = None
        self._status = Status(StatusCode.UNSET)
        self._attributes: BoundedAttributes | None = None  # made when something is set
        self._events: list[tuple[str, int, dict[str, Any]]] | None = None

    @classmethod
    def start(cls, name: str, assembler: TraceAssembler) -> RecordingSpan:
        """A span under the current OpenTelemetry span (tracejudge's, the app's or a remote
        one), or the root of a new trace with a time-ordered id."""
        current = otel_trace.get_current_span().get_span_context()
        if current.is_valid:
            context = SpanContext(
                current.trace_id, _span_id(), False, _SAMPLED, current.trace_state
            )
            span = cls(name, context, current, assembler)
            assembler.started(current.trace_id, context.span_id, current)
        else:
            context = SpanContext(time_ordered_int(), _span_id(), False, _SAMPLED)
            span = cls(name, context, None, assembler)
            assembler.started(context.trace_id, context.span_id, None)
        return span

    # what LiveSpan reads ----------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    # the OpenTelemetry API ----------------------------------------------------
    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def update_name(self, name: str) -> None:
        self._name = name

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._attributes is None:
            self._attributes = BoundedAttributes(immutable=False)  # OTel's own value checks
        self._attributes[key] = value

    def set_attributes(self, attributes: types.Attributes) -> None:
        for key, value in (attributes or {}).items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        checked = dict(BoundedAttributes(attributes=attributes)) if attributes else {}
        event = (name, timestamp if timestamp is not None else time.time_ns(), checked)
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        return None  # links are not stored

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # the SDK's rules: an OK status is final, and UNSET never replaces one
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        stack = "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        )
        self.add_event(
            "exception",
            {
                "exception.type": type(exception).__name__,
                "exception.message": str(exception),
                "exception.stacktrace": stack,
                "exception.escaped": str(escaped),
                **(attributes or {}),
            },
            timestamp,
        )

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return  # only the first end counts
        self._end_time = end_time if end_time is not None else time.time_ns()
        parent = self._parent
        self._assembler.ended(
            SpanRecord(
                self._context.trace_id,
                self._context.span_id,
                None if parent is None else parent.span_id,
                self._name,
                self._start_time,
                self._end_time,
                self._status.status_code,
                self._status.description,
                dict(self._attributes) if self._attributes else None,
                tuple(self._events) if self._events else (),
            )
        )


def _span_id() -> int:
    """64 random bits, never the invalid id 0."""
    return random.getrandbits(64) or 1
