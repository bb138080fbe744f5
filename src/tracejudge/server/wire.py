"""Which fields the wire format has: a body's unknown fields are refused, not dropped in silence.

An entity's ``from_dict`` takes the fields it knows and ignores the rest, so a client's typo
(``trace_metdata``) would lose data without a word. The shape of each entity is read once from
the ``to_dict`` of a full sample (every nested entity present): a dict there with keys is a
structure whose keys are the only ones allowed; an empty one (tags, attributes, inputs) holds
whatever the user put in it. Checking a body against its shape walks only those structures,
so it costs far less than reading the entity back out.
"""

from __future__ import annotations

import functools
from typing import Any

from tracejudge.entities import (
    AssessmentError,
    AssessmentSource,
    EvaluationRun,
    Expectation,
    Feedback,
    Span,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    Trace,
    TraceData,
    TraceInfo,
)

FREE = None
"""A value whose content is the user's (any keys), or a plain value."""


def _shape(sample: Any) -> Any:
    if isinstance(sample, dict):
        return {k: _shape(v) for k, v in sample.items()} if sample else FREE
    if isinstance(sample, list):
        if not sample:
            return FREE
        merged: dict[str, Any] = {}
        for item in sample:  # a list's items share one shape (feedback and expectation: both)
            item_shape = _shape(item)
            if isinstance(item_shape, dict):
                merged.update(item_shape)
        return [merged or FREE]
    return FREE


def _assessments() -> list[Any]:
    error = AssessmentError("E", "message")
    source = AssessmentSource("HUMAN", "someone")
    return [
        Feedback("f", 1, source=source, rationale="r", error=error, trace_id="tr-1", span_id="s"),
        Expectation("e", "x", source=source, trace_id="tr-1"),
    ]


@functools.cache
def trace_shape() -> Any:
    span = Span(
        "tr-1",
        "0000000000000001",
        None,
        "s",
        status=SpanStatus(SpanStatusCode.OK, "d"),
        events=[SpanEvent("e", 1, {})],
    )
    info = TraceInfo("tr-1", "0", 1, assessments=_assessments())
    return _shape(Trace(info, TraceData([span], "{}", "{}")).to_dict())


@functools.cache
def span_shape() -> Any:
    return trace_shape()["data"]["spans"][0]


@functools.cache
def assessment_shape() -> Any:
    return trace_shape()["info"]["assessments"][0]


@functools.cache
def run_shape() -> Any:
    return _shape(EvaluationRun("run-1", "0", "n").to_dict())


def unknown_fields(sent: Any, shape: Any, path: str = "") -> list[str]:
    """The dotted paths of the keys of ``sent`` that ``shape`` does not have."""
    if isinstance(shape, dict) and isinstance(sent, dict):
        found = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in shape:
                found.append(where)
            elif shape[key] is not FREE:
                found.extend(unknown_fields(value, shape[key], where))
        return found
    if isinstance(shape, list) and isinstance(sent, list):
        found = []
        for i, item in enumerate(sent):
            found.extend(unknown_fields(item, shape[0], f"{path}[{i}]"))
        return found
    return []
