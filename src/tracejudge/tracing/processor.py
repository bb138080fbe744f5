"""The span processor that gathers the spans of each trace and hands finished traces to export.

It keeps, per live trace, the finished spans and what ``update_current_trace`` set; when the
root span ends, the whole trace goes to the exporter. Each tracejudge span deposits its
payload (type, inputs, outputs, attributes) as it starts, and fills it in while it runs, so
the payload is with its trace however the span ends. Conversion to entities
happens in the writer thread, so the caller pays only for a few dict and list operations.

A trace is keyed by its OpenTelemetry trace id, except where a tracejudge span starts inside a
span of another SDK (an app's own OpenTelemetry set-up: a web framework's request span, say)
or a remote one (a propagated ``traceparent``). That span keeps its OpenTelemetry parent, so
the app's own traces stay as they were, but it is the root of a tracejudge trace of its own,
with a fresh trace id and the parent's ids in its metadata: several such traces inside one
request (or concurrently in it) share the app's trace id and must not be merged, and before
this they were not stored at all. Their spans are keyed by that root's span id instead.

The exception is a remote parent the app named on purpose, with
:func:`tracejudge.tracing.distributed.continue_trace` (distributed tracing): there the spans
join the caller's trace, their local root keeping the caller's span as its parent, and the
trace is *shared*: each process writes its part, merged with what the store holds of it.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import SpanContext

from tracejudge import settings
from tracejudge.entities.ids import time_ordered_int
from tracejudge.entities.trace import trace_id_from_otel
from tracejudge.store import get_tracking_uri
from tracejudge.tracing import constants as c
from tracejudge.tracing.experiment import active_experiment_name
from tracejudge.tracing.export import ExportItem, get_exporter
from tracejudge.tracing.otel_convert import SpanRecord, record_from_otel
from tracejudge.tracing.payload import SpanPayload
from tracejudge.tracing.sampling import keeps

logger = logging.getLogger("tracejudge.tracing")

TraceKey = int | tuple[str, int]
"""A trace's OpenTelemetry trace id, or ``("under-foreign-span" | "continued", root span id)``."""

continued_parent: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar(
    "tracejudge_continued_parent", default=None
)
"""The remote span that ``continue_trace`` made the parent of the spans begun in its block."""

_REMEMBERED_TRACES = 10_000
"""Written traces remembered for children that end after their root (then half are forgotten);
as many payloads of such children are kept until they end."""


def _forget_older_half(remembered: dict[Any, Any]) -> None:
    """(Under the lock.) Once ``remembered`` holds more than ``_REMEMBERED_TRACES`` entries,
    drop the older half (dicts keep insertion order)."""
    if len(remembered) > _REMEMBERED_TRACES:
        for old in list(remembered)[: _REMEMBERED_TRACES // 2]:
            del remembered[old]


@dataclass
class TraceBuffer:
    """What is known of one live trace until its root span ends."""

    store_uri: str
    experiment_name: str | None
    trace_id: int
    """The id it is stored under (as an OpenTelemetry trace id)."""
    recorded: bool = True
    """False for a trace that head sampling leaves out (:mod:`.sampling`): nothing is written."""
    root_span_id: int | None = None
    """Set for a trace begun under another SDK's span (its root, whose parent is not stored)
    or continued from a remote caller (its local root, whose parent, the caller's span, is)."""
    shared: bool = False
    """Written by more than one process (distributed tracing): merged into what is stored."""
    continued: bool = False
    """Continues a remote caller's trace: its local root keeps the caller's span as parent."""
    spans: list[SpanRecord] = field(default_factory=list)
    payloads: dict[int, SpanPayload] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


class TraceAssembler(SpanProcessor):
    """Gathers each live trace's spans and payloads; exports a trace when its root ends.

    One lock orders the three steps that race when threads end spans of one trace at once: a
    child joining its live trace, the root closing it (the trace is remembered as written in
    the same step), and a late child looking up the written trace. Without it, a child that
    ended between the root's removal from the live traces and its remembering was lost. The
    lock is held for a few dictionary operations (uncontended: about 0.1 µs a span).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[TraceKey, TraceBuffer] = {}
        self._written: dict[TraceKey, tuple[str, str | None, int]] = {}
        self._key_of: dict[int, TraceKey] = {}
        """Open spans of traces begun under another SDK's span: span id -> their trace's key."""
        self._orphan_payloads: dict[int, SpanPayload] = {}
        """Payloads of spans still open when their trace was written (they end late)."""
        self._ended_key_of: dict[int, TraceKey] = {}
        """Ended spans of written traces begun under another SDK's span -> their trace's key,
        for a child that starts after its root ended (it is appended to that trace)."""
        self.last_trace_id: str | None = None
        self._last_in_thread = threading.local()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """A forked child starts with a new lock (the parent's may have been held by another
        thread at the fork, and would never be released here) and without the parent's live
        traces: their roots end in the parent, never here, so a span the child begins under
        one of them begins a trace of its own, linked to that span like one under another
        SDK's span."""
        self._lock = threading.Lock()
        self._live = {}
        self._key_of = {}
        self._orphan_payloads = {}
        self._ended_key_of = {}

    def last_trace_id_in_thread(self) -> str | None:
        """The trace that finished most recently in the calling thread."""
        return getattr(self._last_in_thread, "trace_id", None)

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        context = span.get_span_context()
        self.started(context.trace_id, context.span_id, span.parent)

    def started(self, trace_id: int, span_id: int, parent: SpanContext | None) -> None:
        """A span began (an SDK span through :meth:`on_start`, or a RecordingSpan)."""
        try:
            self._started(trace_id, span_id, parent)
        except Exception:  # never break the user's code
            logger.exception("tracejudge could not start a span")

    def _started(self, trace_id: int, span_id: int, parent: SpanContext | None) -> None:
        if parent is None:
            self._live[trace_id] = self._new_buffer(trace_id)
            return
        if trace_id in self._live:  # a child in a live trace: the common case
            return
        key = self._key_of.get(parent.span_id) or self._ended_key_of.get(parent.span_id)
        if key is not None:  # a child in a trace begun under another SDK's span
            self._key_of[span_id] = key
            return
        if trace_id in self._written:
            return  # a child started after its root ended: appended to the stored trace
        remote = continued_parent.get()
        if remote is not None and (remote.trace_id, remote.span_id) == (
            parent.trace_id,
            parent.span_id,
        ):  # the caller's trace, continued here: its part is stored under the caller's id
            buffer = self._new_buffer(trace_id)
            buffer.root_span_id, buffer.shared, buffer.continued = span_id, True, True
            key = ("continued", span_id)
            self._live[key] = buffer
            self._key_of[span_id] = key
            return
        # the first tracejudge span under another SDK's span, or a remote one
        buffer = self._new_buffer(time_ordered_int())
        buffer.root_span_id = span_id
        buffer.metadata[c.OTEL_PARENT_TRACE_ID] = f"{parent.trace_id:032x}"
        buffer.metadata[c.OTEL_PARENT_SPAN_ID] = f"{parent.span_id:016x}"
        key = ("under-foreign-span", span_id)
        self._live[key] = buffer
        self._key_of[span_id] = key

    @staticmethod
    def _new_buffer(trace_id: int) -> TraceBuffer:
        try:
            uri = get_tracking_uri()
        except Exception:  # an unusable URI in the environment: the trace is kept, and its
            uri = settings.TRACKING_URI.get() or ""  # write fails as a counted, warned drop
        return TraceBuffer(uri, active_experiment_name(), trace_id, recorded=keeps(trace_id))

    def _key(self, trace_id: int, span_id: int) -> TraceKey:
        if self._key_of:
            key = self._key_of.get(span_id)
            if key is not None:
                return key
        return trace_id

    def deposit(self, trace_id: int, span_id: int, payload: SpanPayload) -> int:
        """Keep a span's payload (called as the span starts; the payload fills in while it
        runs) until its trace is exported; returns the trace id it is stored under."""
        key = self._key(trace_id, span_id)
        with self._lock:
            buffer = self._live.get(key)
            if buffer is not None:
                buffer.payloads[span_id] = payload
                return buffer.trace_id
            written = self._written.get(key)
            if written is not None:
                self._keep_orphan(span_id, payload)
                return written[2]
        return trace_id

    def _keep_orphan(self, span_id: int, payload: SpanPayload) -> None:
        """(Under the lock.) A payload for a span that will end after its trace was written."""
        self._orphan_payloads[span_id] = payload
        _forget_older_half(self._orphan_payloads)  # spans that never end

    def stored_trace_id(self, trace_id: int, span_id: int) -> int:
        """The id that the trace of an open span is stored under."""
        key = self._key(trace_id, span_id)
        buffer = self._live.get(key)
        if buffer is not None:
            return buffer.trace_id
        written = self._written.get(key)
        return trace_id if written is None else written[2]

    def on_end(self, span: ReadableSpan) -> None:
        try:
            record = record_from_otel(span)
        except Exception:
            logger.exception("tracejudge could not read a finished span")
            return
        self.ended(record)

    def ended(self, record: SpanRecord) -> None:
        """A span ended (an SDK span through :meth:`on_end`, or a RecordingSpan)."""
        try:
            self._ended(record)
        except Exception:  # never break the user's code
            logger.exception("tracejudge could not record a finished span")

    def _ended(self, record: SpanRecord) -> None:
        key: TraceKey = record.trace_id
        under_foreign = False
        if self._key_of:
            found = self._key_of.pop(record.span_id, None)
            if found is not None:
                key, under_foreign = found, True
        finished: TraceBuffer | None = None
        with self._lock:  # the exports are queued inside it: a trace before its late children
            buffer = self._live.get(key)
            if buffer is None:
                late = self._late_item(key, record)
                if late is not None:
                    get_exporter().submit(late)
                elif self._orphan_payloads.pop(record.span_id, None) is not None:
                    self._lost_late_span(record)
            else:
                is_root = (
                    record.span_id == buffer.root_span_id
                    if under_foreign
                    else record.parent_id is None
                )
                if under_foreign and not buffer.continued:  # its own id, its root parentless
                    record = record._replace(
                        trace_id=buffer.trace_id, parent_id=None if is_root else record.parent_id
                    )
                buffer.spans.append(record)
                if is_root:
                    del self._live[key]
                    self._close(key, buffer)
                    finished = buffer
        if finished is not None:
            self._finished(finished)

    def _late_item(self, key: TraceKey, record: SpanRecord) -> ExportItem | None:
        """(Under the lock.) A child that outlived its root, as an append to the stored trace
        (if it is remembered)."""
        written = self._written.get(key)
        if written is None:
            return None
        uri, experiment, stored_id = written
        payload = self._orphan_payloads.pop(record.span_id, None)
        return ExportItem(
            uri,
            experiment,
            [record._replace(trace_id=stored_id)],
            payloads={record.span_id: payload} if payload else {},
            late_trace_id=trace_id_from_otel(stored_id),
        )

    @staticmethod
    def _lost_late_span(record: SpanRecord) -> None:
        """(Under the lock.) A span of a recorded trace that ended after its trace was written
        and forgotten: counted, and warned about, rather than lost in silence."""
        stats = get_exporter().stats
        stats.late_spans_lost += 1
        if stats.late_spans_lost == 1 or stats.late_spans_lost % 1000 == 0:
            logger.warning(
                "tracejudge lost %d span(s) that ended after more than %d other traces had "
                "finished since their own (the last: %r)",
                stats.late_spans_lost,
                _REMEMBERED_TRACES,
                record.name,
            )

    def _close(self, key: TraceKey, buffer: TraceBuffer) -> None:
        """(Under the lock.) The root ended: the trace is remembered as written, so that its
        late children find it, the payloads of children still open wait for them, and the
        trace is queued for export."""
        if not buffer.recorded:  # sampled out: its late children find nothing either
            return
        self._written[key] = (buffer.store_uri, buffer.experiment_name, buffer.trace_id)
        _forget_older_half(self._written)
        if isinstance(key, tuple):  # its spans' parents are found by span id, not trace id
            self._ended_key_of.update((r.span_id, key) for r in buffer.spans)
            _forget_older_half(self._ended_key_of)
        if len(buffer.payloads) > len(buffer.spans):  # some spans are still open
            ended = {r.span_id for r in buffer.spans}
            for span_id, payload in buffer.payloads.items():
                if span_id not in ended:
                    self._keep_orphan(span_id, payload)
        get_exporter().submit(
            ExportItem(
                buffer.store_uri,
                buffer.experiment_name,
                buffer.spans,
                buffer.payloads,
                buffer.tags,
                buffer.metadata,
                buffer.overrides,
                shared=buffer.shared,
            )
        )

    def _finished(self, buffer: TraceBuffer) -> None:
        """The calling thread's last trace, for ``get_last_active_trace_id``."""
        last = trace_id_from_otel(buffer.trace_id) if buffer.recorded else None
        self.last_trace_id = self._last_in_thread.trace_id = last

    def buffer_for(self, trace_id: int, span_id: int) -> TraceBuffer | None:
        """The live trace of an open span (OpenTelemetry ids)."""
        return self._live.get(self._key(trace_id, span_id))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return get_exporter().flush(timeout_millis / 1000)
