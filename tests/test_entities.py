import json

import pytest

from tracejudge.entities import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    Document,
    Expectation,
    Experiment,
    Feedback,
    Span,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceState,
    ids,
)
from tracejudge.entities._json import dumps, to_jsonable
from tracejudge.entities.assessment import new_assessment_id
from tracejudge.entities.trace import is_trace_id, new_trace_id, trace_id_from_otel
from tracejudge.errors import InvalidArgumentError


def _roundtrip(entity):
    data = entity.to_dict()
    again = type(entity).from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    return again


def _span(trace_id: str, span_id: str, parent: str | None) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent,
        name="retrieve",
        span_type=SpanType.RETRIEVER,
        start_time_ns=1_000_000_000,
        end_time_ns=1_500_000_000,
        status=SpanStatus(SpanStatusCode.OK),
        inputs={"query": "capital of France"},
        outputs=[Document("Paris is the capital.", {"source": "wiki"}, id="d1").to_dict()],
        attributes={"k": [1, 2], "model": "m"},
        events=[SpanEvent("exception", 1_200_000_000, {"exception.type": "ValueError"})],
    )


def test_trace_ids_are_tr_plus_otel_hex():
    assert trace_id_from_otel(0xABC) == "tr-" + "0" * 29 + "abc"
    assert is_trace_id(new_trace_id())
    assert not is_trace_id("tr-xyz")


def test_new_ids_sort_by_creation_time_and_stay_unique(monkeypatch):
    """Trace and assessment ids lead with the creation millisecond (so the store's indexes grow
    at their right edge) and end in 80 random bits."""
    now_ns = [1_700_000_000_000 * 1_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now_ns[0])
    early = [new_trace_id() for _ in range(1000)] + [new_assessment_id() for _ in range(1000)]
    now_ns[0] += 1_000_000  # one millisecond later
    late_trace, late_assessment = new_trace_id(), new_assessment_id()
    assert all(t < late_trace for t in early[:1000])
    assert all(a < late_assessment for a in early[1000:])
    assert len(set(early)) == 2000
    assert all(is_trace_id(t) for t in early[:1000])
    assert early[0][3:15] == f"{1_700_000_000_000:012x}"


def test_span_and_trace_round_trip():
    tid = new_trace_id()
    root = _span(tid, "a" * 16, None)
    child = _span(tid, "b" * 16, "a" * 16)
    feedback = Feedback(
        "groundedness",
        "yes",
        rationale="supported",
        trace_id=tid,
        source=AssessmentSource("LLM_JUDGE", "local:/default"),
    )
    info = TraceInfo(
        tid,
        "0",
        1_000,
        500,
        TraceState.OK,
        name="answer",
        request_preview="q",
        response_preview="a",
        trace_metadata={"m": "1"},
        tags={"env": "prod"},
        assessments=[feedback, Expectation("expected_response", "Paris", trace_id=tid)],
    )
    trace = Trace(info, TraceData([root, child], '{"q": 1}', '"Paris"'))
    again = Trace.from_json(trace.to_json())
    assert again.to_dict() == trace.to_dict()
    assert again.data.spans[1].parent_id == "a" * 16
    assert again.info.assessments[0].source.source_type == "LLM_JUDGE"
    assert isinstance(again.info.assessments[1], Expectation)
    assert again.data.inputs == {"q": 1} and again.data.outputs == "Paris"
    assert [s.span_id for s in again.search_spans(span_type="RETRIEVER")] == ["a" * 16, "b" * 16]
    assert again.search_assessments("groundedness")[0].value == "yes"
    assert again.search_assessments(type="expectation")[0].name == "expected_response"
    assert again.info.timestamp_ms == 1_000 and again.info.execution_time_ms == 500


def test_small_entities_round_trip():
    _roundtrip(Document("text", {"a": 1}, id="x"))
    _roundtrip(Experiment("3", "rag", 123, {"team": "a"}))
    _roundtrip(SpanStatus(SpanStatusCode.ERROR, "boom"))
    _roundtrip(SpanEvent("e", 5, {"x": 1}))
    _roundtrip(AssessmentSource("HUMAN", "alice"))
    _roundtrip(AssessmentError("TIMEOUT", "judge timed out"))
    span = _span(new_trace_id(), "c" * 16, None)
    assert Span.from_dict(json.loads(json.dumps(span.to_dict()))) == span


@pytest.mark.parametrize("value", [True, 0.25, 3, "yes", ["a", "b"], {"k": [1, {"n": None}]}])
def test_feedback_values_round_trip(value):
    fb = Feedback("v", value, metadata={"tokens": 12})
    again = Assessment.from_dict(json.loads(json.dumps(fb.to_dict())))
    assert isinstance(again, Feedback) and again.value == value and again.metadata == {"tokens": 12}


def test_feedback_defaults_and_validation():
    fb = Feedback("trust", 0.5)
    assert fb.source.source_type == "CODE" and fb.valid
    assert Expectation("expected", "x").source.source_type == "HUMAN"
    assert AssessmentSource("ai_judge").source_type == "LLM_JUDGE"
    with pytest.raises(InvalidArgumentError, match="source type"):
        AssessmentSource("ROBOT")
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        Feedback("", 1)
    with pytest.raises(InvalidArgumentError, match="bool, number, string, list or dict"):
        Feedback("x", object())
    err = Feedback("x", error=ValueError("judge said nothing"))
    assert err.error.error_code == "ValueError" and "judge said nothing" in err.error.error_message
    assert err.error.stack_trace


def test_stamped_gives_id_and_times():
    stamped = Feedback("x", 1).stamped("tr-" + "0" * 32)
    assert stamped.assessment_id.startswith("a-")
    assert stamped.trace_id == "tr-" + "0" * 32
    assert stamped.create_time_ms and stamped.last_update_time_ms


def test_to_jsonable_handles_rich_values():
    import dataclasses
    import datetime
    import enum

    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int

    value = {
        "doc": Document("t"),
        "set": {3, 1},
        "when": datetime.date(2026, 1, 2),
        "bytes": b"\x00\x01",
        "color": Color.RED,
        "point": Point(1),
        "nan": float("nan"),
        "obj": object(),
    }
    out = json.loads(dumps(value))
    assert out["doc"]["page_content"] == "t"
    assert out["set"] == [1, 3]
    assert out["when"] == "2026-01-02"
    assert out["color"] == "red" and out["point"] == {"x": 1} and out["nan"] is None
    assert out["obj"].startswith("<object")
    assert to_jsonable((1, 2)) == [1, 2]
    assert to_jsonable({"inf": float("inf")}) == {"inf": None}
    assert json.loads(dumps({"big": 2**70, "nan": float("nan")})) == {"big": 2**70, "nan": None}
