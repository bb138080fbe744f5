"""Head sampling: which traces are recorded, for apps that make more traces than anyone reads.

The decision is made once per trace, when its root span begins, from the trace id (its low 64
bits, as OpenTelemetry's ``TraceIdRatioBased`` does), so a trace is kept whole or not at all, a
kept trace stays kept at any higher ratio, and every process decides alike. The spans of a
dropped trace still run through the tracing code (the app's instrumentation sees them), but
nothing is written: the writer's and the store's work, the larger part of tracing's cost,
is what sampling saves. ``evaluate()`` keeps every trace of its runs (:func:`keep_every_trace`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from tracejudge import settings

_LOW_64 = (1 << 64) - 1
_keep_all: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tracejudge_keep_every_trace", default=False
)


def keeps(trace_id: int) -> bool:
    """Whether the trace that begins now with this OpenTelemetry trace id is recorded."""
    if _keep_all.get():
        return True
    ratio = settings.TRACE_SAMPLING_RATIO.get_or_default()
    return ratio >= 1 or (trace_id & _LOW_64) < ratio * (1 << 64)


@contextlib.contextmanager
def keep_every_trace() -> Iterator[None]:
    """Record every trace begun in this block, whatever ``TRACEJUDGE_TRACE_SAMPLING_RATIO`` says
    (an evaluation run needs the trace of each of its rows)."""
    token = _keep_all.set(True)
    try:
        yield
    finally:
        _keep_all.reset(token)
