"""A trace: one request through an LLM application, as a tree of spans plus its verdicts."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities._fields import optional_int
from tracejudge.entities._json import loads
from tracejudge.entities.assessment import Assessment, Expectation, Feedback
from tracejudge.entities.ids import time_ordered_hex
from tracejudge.entities.span import Span

TRACE_ID_PREFIX = "tr-"
_TRACE_ID_RE = re.compile(r"^tr-[0-9a-f]{32}$")


def trace_id_from_otel(otel_trace_id: int) -> str:
    """``tr-`` followed by the 32 hex digits of the OpenTelemetry trace id."""
    return f"{TRACE_ID_PREFIX}{otel_trace_id:032x}"


def new_trace_id() -> str:
    """A new id that sorts by creation time (see :mod:`tracejudge.entities.ids`)."""
    return TRACE_ID_PREFIX + time_ordered_hex()


def is_trace_id(value: str) -> bool:
    return bool(_TRACE_ID_RE.match(value))


class TraceState(str, enum.Enum):
    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"
    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"


@dataclass
class TraceInfo:
    """What is known of a trace without reading its spans (one row of the ``traces`` table)."""

    trace_id: str
    experiment_id: str
    request_time: int
    """Start of the trace, in milliseconds since the epoch."""
    execution_duration: int | None = None
    """Duration in milliseconds (``None`` while in progress)."""
    state: TraceState = TraceState.OK
    name: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    client_request_id: str | None = None
    trace_metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    assessments: list[Assessment] = field(default_factory=list)

    @property
    def timestamp_ms(self) -> int:
        return self.request_time

    @property
    def request_id(self) -> str:
        """MLflow 2's name for the trace id."""
        return self.trace_id

    @property
    def execution_time_ms(self) -> int | None:
        return self.execution_duration

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "experiment_id": self.experiment_id,
            "request_time": self.request_time,
            "execution_duration": self.execution_duration,
            "state": self.state.value,
            "name": self.name,
            "request_preview": self.request_preview,
            "response_preview": self.response_preview,
            "client_request_id": self.client_request_id,
            "trace_metadata": dict(self.trace_metadata),
            "tags": dict(self.tags),
            "assessments": [a.to_dict() for a in self.assessments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceInfo:
        return cls(
            trace_id=data["trace_id"],
            experiment_id=str(data["experiment_id"]),
            request_time=int(data["request_time"]),
            execution_duration=optional_int(data, "execution_duration"),
            state=TraceState(data.get("state") or "OK"),
            name=data.get("name"),
            request_preview=data.get("request_preview"),
            response_preview=data.get("response_preview"),
            client_request_id=data.get("client_request_id"),
            trace_metadata=dict(data.get("trace_metadata") or {}),
            tags=dict(data.get("tags") or {}),
            assessments=[Assessment.from_dict(a) for a in data.get("assessments") or []],
        )


@dataclass
class TraceData:
    """The spans of a trace and the root span's inputs/outputs as JSON text.

    ``request``/``response`` are kept even when spans were not loaded (``include_spans=False``).
    """

    spans: list[Span] = field(default_factory=list)
    request: str | None = None
    response: str | None = None

    @property
    def inputs(self) -> Any:
        return loads(self.request)

    @property
    def outputs(self) -> Any:
        return loads(self.response)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spans": [s.to_dict() for s in self.spans],
            "request": self.request,
            "response": self.response,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceData:
        return cls(
            spans=[Span.from_dict(s) for s in data.get("spans") or []],
            request=data.get("request"),
            response=data.get("response"),
        )


@dataclass
class Trace:
    info: TraceInfo
    data: TraceData = field(default_factory=TraceData)

    @property
    def root_span(self) -> Span | None:
        return next((s for s in self.data.spans if s.parent_id is None), None)

    def search_spans(
        self,
        span_type: str | None = None,
        name: str | re.Pattern[str] | None = None,
        span_id: str | None = None,
    ) -> list[Span]:
        """Spans matching every given criterion, in start order (``name`` may be a regex)."""
        found = []
        for span in sorted(self.data.spans, key=lambda s: s.start_time_ns):
            if span_type is not None and span.span_type != span_type:
                continue
            if span_id is not None and span.span_id != span_id:
                continue
            if isinstance(name, re.Pattern):
                if not name.search(span.name):
                    continue
            elif name is not None and span.name != name:
                continue
            found.append(span)
        return found

    def search_assessments(
        self,
        name: str | None = None,
        *,
        span_id: str | None = None,
        all: bool = False,
        type: str | None = None,
    ) -> list[Assessment]:
        """Assessments by name/span/kind (``type`` is "feedback" or "expectation"); valid ones unless ``all``."""
        kinds = {"feedback": Feedback, "expectation": Expectation}
        out = []
        for a in self.info.assessments:
            if not all and not a.valid:
                continue
            if name is not None and getattr(a, "name", None) != name:
                continue
            if span_id is not None and a.span_id != span_id:
                continue
            if type is not None and not isinstance(a, kinds[type]):
                continue
            out.append(a)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info.to_dict(), "data": self.data.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        return cls(TraceInfo.from_dict(data["info"]), TraceData.from_dict(data.get("data") or {}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.from_dict(json.loads(text))
