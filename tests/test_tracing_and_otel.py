"""tracejudge spans and the app's own OpenTelemetry: tracejudge spans inside an app's spans (a
web framework's request span, a propagated ``traceparent``) each make a stored trace, none
merged with another, and the app's own traces keep their shape (before, such a trace was
silently not stored at all); the app's spans and OpenTelemetry API calls inside a tracejudge
span (which skips the SDK: ``tracing.recording_span``) see it as the current span."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import tracejudge
from tracejudge.tracing import constants as c
from tracejudge.tracing.fluent import open_detached_span


@pytest.fixture
def app_tracer():
    """The app's own OpenTelemetry SDK, exporting to memory (not tracejudge's provider)."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    yield provider.get_tracer("app"), exported
    provider.shutdown()


@tracejudge.trace(span_type="RETRIEVER")
def retrieve(question: str) -> list[str]:
    return [f"doc about {question}"]


@tracejudge.trace
def answer(question: str) -> str:
    docs = retrieve(question)
    tracejudge.update_current_trace(tags={"asked": question})
    return f"{question}: {docs[0]}"


def _stored(trace_id: str):
    tracejudge.flush()
    trace = tracejudge.get_trace(trace_id)
    assert trace is not None, f"{trace_id} was not stored"
    return trace


def test_a_trace_inside_an_app_span_is_stored_as_its_own(sqlite_tracking, app_tracer):
    tracer, exported = app_tracer
    with tracer.start_as_current_span("GET /ask") as request:
        with tracejudge.start_span("handler") as handler:
            assert answer("tides") == "tides: doc about tides"
            with tracer.start_as_current_span("app-db-query"):  # the app's span inside ours
                pass
            inside = handler.trace_id
        app_trace_id = request.get_span_context().trace_id
    assert handler.trace_id == inside == tracejudge.get_last_active_trace_id()
    assert inside != f"tr-{app_trace_id:032x}"  # its own id: other such traces may share the app's

    trace = _stored(inside)
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"handler", "answer", "retrieve"}
    assert spans["handler"].parent_id is None  # the app's span is not in this trace
    assert spans["answer"].parent_id == spans["handler"].span_id
    assert spans["retrieve"].parent_id == spans["answer"].span_id
    assert {s.trace_id for s in trace.data.spans} == {inside}
    assert trace.info.name == "handler" and trace.info.tags["asked"] == "tides"
    assert trace.info.trace_metadata[c.OTEL_PARENT_TRACE_ID] == f"{app_trace_id:032x}"
    assert trace.info.trace_metadata[c.OTEL_PARENT_SPAN_ID] == (
        f"{request.get_span_context().span_id:016x}"
    )
    # the app's own export is unchanged: its span inside ours is still in the app's trace
    by_name = {s.name: s for s in exported.get_finished_spans()}
    assert set(by_name) == {"GET /ask", "app-db-query"}
    assert by_name["app-db-query"].context.trace_id == app_trace_id


def test_concurrent_traces_in_one_app_span_are_not_merged(sqlite_tracking, app_tracer):
    tracer, _ = app_tracer

    async def both() -> list[str]:
        return await asyncio.gather(*(asyncio.to_thread(_answer_in_copy, q) for q in "abc"))

    with tracer.start_as_current_span("POST /batch"):
        trace_ids = asyncio.run(both())
    assert len(set(trace_ids)) == 3
    for trace_id in trace_ids:
        trace = _stored(trace_id)
        names = sorted(s.name for s in trace.data.spans)
        assert names == ["answer", "retrieve"], names
        question = trace.data.spans[0].inputs.get("question") or trace.data.spans[1].inputs.get(
            "question"
        )
        assert trace.info.tags["asked"] == question


def _answer_in_copy(question: str) -> str:
    """Runs in a worker thread of to_thread, which copies the caller's context (the app span)."""
    answer(question)
    return tracejudge.get_last_active_trace_id(thread_local=True)


def test_a_trace_under_a_propagated_traceparent_is_stored(sqlite_tracking):
    """An incoming request's W3C ``traceparent`` (extracted as the app's framework would)."""
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    token = otel_context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        answer("remote")
    finally:
        otel_context.detach(token)
    trace = _stored(tracejudge.get_last_active_trace_id())
    assert sorted(s.name for s in trace.data.spans) == ["answer", "retrieve"]
    meta = trace.info.trace_metadata
    assert meta[c.OTEL_PARENT_TRACE_ID] == "0af7651916cd43dd8448eb211c80319c"
    assert meta[c.OTEL_PARENT_SPAN_ID] == "b7ad6b7169203331"


def test_a_child_outliving_its_root_under_an_app_span_is_appended(sqlite_tracking, app_tracer):
    tracer, _ = app_tracer
    with tracer.start_as_current_span("GET /slow"):
        with tracejudge.start_span("root") as root:
            straggler = open_detached_span("background-task", "TOOL")
        trace_id = root.trace_id
    assert [s.name for s in _stored(trace_id).data.spans] == ["root"]
    straggler.set_outputs("done")
    straggler.end()
    spans = {s.name: s for s in _stored(trace_id).data.spans}
    assert spans["background-task"].outputs == "done"
    assert spans["background-task"].parent_id == spans["root"].span_id
    assert straggler.trace_id == trace_id


def test_a_child_begun_after_its_root_ended_under_an_app_span_is_appended(
    sqlite_tracking, app_tracer
):
    """Background work scheduled by a request starts its span once the request's ended: it
    still joins the request's trace (it began a trace of its own)."""
    from opentelemetry import context as otel_context

    tracer, _ = app_tracer
    with tracer.start_as_current_span("GET /ask"):
        with tracejudge.start_span("request") as root:
            later = otel_context.get_current()  # what a scheduled callback would run in
        trace_id = root.trace_id
    token = otel_context.attach(later)
    try:
        with tracejudge.start_span("audit"):
            pass
    finally:
        otel_context.detach(token)
    spans = {s.name: s for s in _stored(trace_id).data.spans}
    assert spans["audit"].parent_id == spans["request"].span_id
    assert len(tracejudge.search_traces(return_type="list")) == 1


def test_traces_outside_any_app_span_keep_their_opentelemetry_trace_id(sqlite_tracking):
    with tracejudge.start_span("plain") as span:
        otel_id = span.otel_trace_id
    assert span.trace_id == f"tr-{otel_id:032x}" == tracejudge.get_last_active_trace_id()
    assert c.OTEL_PARENT_TRACE_ID not in _stored(span.trace_id).info.trace_metadata


def test_the_app_sees_a_tracejudge_span_as_its_current_span(sqlite_tracking, app_tracer):
    """OpenTelemetry API calls on the current span record on ours; the app's spans nest under
    it; an outgoing request carries its ids in ``traceparent``."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Status, StatusCode

    tracer, exported = app_tracer
    carrier: dict[str, str] = {}
    with tracejudge.start_span("llm-call") as span:
        current = otel_trace.get_current_span()
        current.set_attribute("http.status_code", 200)
        current.set_attributes({"retry": True, "sizes": [1, 2]})
        current.add_event("first-token", {"ms": 41})
        current.set_status(Status(StatusCode.ERROR, "upstream 500"))
        with tracer.start_as_current_span("app-http-call"):
            TraceContextTextMapPropagator().inject(carrier)
        ours = span.otel_span.get_span_context()
    [app_span] = exported.get_finished_spans()
    assert app_span.context.trace_id == ours.trace_id
    assert app_span.parent is not None and app_span.parent.span_id == ours.span_id
    assert carrier["traceparent"] == f"00-{ours.trace_id:032x}-{app_span.context.span_id:016x}-01"
    [stored] = _stored(span.trace_id).data.spans
    assert stored.attributes["http.status_code"] == 200 and stored.attributes["retry"] is True
    assert stored.attributes["sizes"] == [1, 2]
    assert [(e.name, e.attributes) for e in stored.events] == [("first-token", {"ms": 41})]
    assert stored.status.status_code == "ERROR" and stored.status.description == "upstream 500"


def test_spans_of_libraries_on_the_tracejudge_provider_join_its_traces(sqlite_tracking):
    """An instrumentor given ``tracejudge.tracing.get_tracer_provider()`` makes SDK spans: they
    nest under tracejudge's spans and tracejudge's under them, in one stored trace."""
    from tracejudge.tracing import get_tracer_provider

    library = get_tracer_provider().get_tracer("some-instrumentor")

    @tracejudge.trace
    def tool(x: int) -> int:
        return x + 1

    with tracejudge.start_span("agent") as agent, library.start_as_current_span("library-step"):
        tool(1)
    spans = {s.name: s for s in _stored(agent.trace_id).data.spans}
    assert set(spans) == {"agent", "library-step", "tool"}
    assert spans["library-step"].parent_id == spans["agent"].span_id
    assert spans["tool"].parent_id == spans["library-step"].span_id
    assert spans["tool"].outputs == 2


def test_a_span_ended_twice_or_used_after_its_end_changes_nothing(sqlite_tracking):
    with tracejudge.start_span("once") as span:
        otel = span.otel_span
    otel.end()  # a second end
    otel.set_attribute("late", 1)
    assert not otel.is_recording()
    spans = _stored(span.trace_id).data.spans
    assert [s.name for s in spans] == ["once"] and "late" not in spans[0].attributes


def test_a_tracejudge_span_inside_an_app_span_inside_a_tracejudge_span_stays_in_its_trace(
    sqlite_tracking, app_tracer
):
    """ours -> the app's -> ours: one stored trace; the inner span's parent (the app's span) is
    not stored, so the trace's tree shows the inner span at the top level, not lost."""
    from tracejudge.entities.span_tree import span_tree

    tracer, _ = app_tracer
    with (
        tracejudge.start_span("outer") as outer,
        tracer.start_as_current_span("app-middleware") as middleware,
    ):
        answer("nested")
    trace = _stored(outer.trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"outer", "answer", "retrieve"}
    assert spans["answer"].parent_id == f"{middleware.get_span_context().span_id:016x}"
    assert [(s.name, depth) for s, depth in span_tree(trace.data.spans)] == [
        ("outer", 0),
        ("answer", 0),
        ("retrieve", 1),
    ]
