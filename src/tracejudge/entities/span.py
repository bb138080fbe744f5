"""A finished span: one step of a traced LLM application (an LLM call, a retrieval, a tool)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities._fields import optional_int
from tracejudge.entities._json import dumps, to_jsonable


class SpanType:
    """Well-known span types. Any other string is accepted as a custom type."""

    LLM = "LLM"
    CHAT_MODEL = "CHAT_MODEL"
    RETRIEVER = "RETRIEVER"
    AGENT = "AGENT"
    TOOL = "TOOL"
    CHAIN = "CHAIN"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    PARSER = "PARSER"
    UNKNOWN = "UNKNOWN"


class SpanStatusCode(str, enum.Enum):
    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


@dataclass(frozen=True)
class SpanStatus:
    status_code: SpanStatusCode = SpanStatusCode.UNSET
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"status_code": self.status_code.value, "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpanStatus:
        return cls(SpanStatusCode(data.get("status_code", "UNSET")), data.get("description", ""))


@dataclass(frozen=True)
class SpanEvent:
    """Something that happened at a point in a span, such as an exception."""

    name: str
    timestamp_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timestamp_ns": self.timestamp_ns,
            "attributes": to_jsonable(self.attributes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpanEvent:
        return cls(data["name"], int(data["timestamp_ns"]), dict(data.get("attributes") or {}))


@dataclass(frozen=True)
class Span:
    """An immutable, finished span as it is stored and read back.

    ``trace_id`` is the ``tr-`` id of its trace; ``span_id`` and ``parent_id`` are the
    16-hex OpenTelemetry span ids (``parent_id`` is ``None`` for the root span).
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    span_type: str = SpanType.UNKNOWN
    start_time_ns: int = 0
    end_time_ns: int | None = None
    status: SpanStatus = field(default_factory=SpanStatus)
    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)

    @property
    def duration_ms(self) -> float | None:
        if self.end_time_ns is None:
            return None
        return (self.end_time_ns - self.start_time_ns) / 1e6

    def get_attribute(self, key: str, default: Any = None) -> Any:
        return self.attributes.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "span_type": self.span_type,
            "start_time_ns": self.start_time_ns,
            "end_time_ns": self.end_time_ns,
            "status": self.status.to_dict(),
            "inputs": to_jsonable(self.inputs),
            "outputs": to_jsonable(self.outputs),
            "attributes": to_jsonable(self.attributes),
            "events": [e.to_dict() for e in self.events],
        }

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`, serialised directly (the store's hot path)."""
        return dumps(
            {
                "trace_id": self.trace_id,
                "span_id": self.span_id,
                "parent_id": self.parent_id,
                "name": self.name,
                "span_type": self.span_type,
                "start_time_ns": self.start_time_ns,
                "end_time_ns": self.end_time_ns,
                "status": self.status.to_dict(),
                "inputs": self.inputs,
                "outputs": self.outputs,
                "attributes": self.attributes,
                "events": [e.to_dict() for e in self.events],
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        return cls(
            trace_id=data["trace_id"],
            span_id=data["span_id"],
            parent_id=data.get("parent_id"),
            name=data["name"],
            span_type=data.get("span_type") or SpanType.UNKNOWN,
            start_time_ns=optional_int(data, "start_time_ns") or 0,
            end_time_ns=optional_int(data, "end_time_ns"),
            status=SpanStatus.from_dict(data.get("status") or {}),
            inputs=data.get("inputs"),
            outputs=data.get("outputs"),
            attributes=dict(data.get("attributes") or {}),
            events=[SpanEvent.from_dict(e) for e in data.get("events") or []],
        )
