"""One part of a distributed trace merged into what the store holds of it.

With distributed tracing each process writes the spans it recorded of a trace, in whatever
order the processes finish: the callee's part often lands before the caller's. The trace's
own fields (request, response, name, timing, state, what ``update_current_trace`` set) belong
to its root, the caller's first span; until that part arrives the trace is *in progress*,
with the earliest span stored standing in for the root. Spans, tags and metadata are the
union of the parts (the newer part wins a key both set), the token usage is summed over every
span, and the trace stays in the experiment where its first part landed.
"""

from __future__ import annotations

import dataclasses

from tracejudge.entities import Trace, TraceData, TraceState
from tracejudge.tracing import constants as c
from tracejudge.tracing.otel_convert import assemble_trace


def has_root(trace: Trace) -> bool:
    """Whether the trace holds its root span (a span without a parent)."""
    return any(span.parent_id is None for span in trace.data.spans)


def merge_part(existing: Trace | None, part: Trace) -> Trace:
    """``part`` merged into ``existing`` (the stored trace, or None), ready to write."""
    if existing is None:
        return part if has_root(part) else _in_progress(part)
    spans = {span.span_id: span for span in existing.data.spans}
    spans.update((span.span_id, span) for span in part.data.spans)
    metadata = {**existing.info.trace_metadata, **part.info.trace_metadata}
    metadata.pop(c.TRACE_TOKEN_USAGE, None)  # summed again over every span
    merged = assemble_trace(
        list(spans.values()),
        existing.info.experiment_id,
        {**existing.info.tags, **part.info.tags},
        metadata,
    )
    source = part if has_root(part) else existing if has_root(existing) else None
    if source is None:
        return _in_progress(merged)
    info = dataclasses.replace(
        source.info,
        experiment_id=existing.info.experiment_id,
        tags=merged.info.tags,
        trace_metadata=merged.info.trace_metadata,
        assessments=[],  # the stored ones stay as they are
    )
    return Trace(info, TraceData(merged.data.spans, source.data.request, source.data.response))


def _in_progress(trace: Trace) -> Trace:
    """The trace whose root has not arrived yet: in progress, its duration unknown."""
    info = dataclasses.replace(
        trace.info, state=TraceState.IN_PROGRESS, execution_duration=None, assessments=[]
    )
    return Trace(info, trace.data)
