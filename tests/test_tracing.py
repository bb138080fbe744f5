"""The tracing SDK against a real store: nesting, async, threads, generators, failures."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import tracejudge
from tracejudge.entities import Document, SpanStatusCode, SpanType, TraceState


def _last_trace():
    tracejudge.flush()
    trace = tracejudge.get_trace(tracejudge.get_last_active_trace_id())
    assert trace is not None
    return trace


def _spans_by_name(trace):
    return {s.name: s for s in trace.data.spans}


def test_nested_sync_spans_and_retriever_documents(tracking):
    @tracejudge.trace(span_type=SpanType.RETRIEVER)
    def retrieve(query: str, k: int = 2) -> list[Document]:
        return [Document("Paris is the capital of France.", {"source": "wiki"}, id="d1")]

    @tracejudge.trace(name="rag-answer", attributes={"version": 3})
    def answer(question: str) -> str:
        docs = retrieve(question)
        with tracejudge.start_span("generate", span_type="LLM", attributes={"model": "m"}) as span:
            span.set_inputs({"docs": docs})
            span.set_outputs("Paris")
            span.add_event("cache_miss", {"key": "q1", "nested": {"a": 1}})
        return "Paris"

    assert answer("What is the capital of France?") == "Paris"
    trace = _last_trace()
    spans = _spans_by_name(trace)
    root, ret, gen = spans["rag-answer"], spans["retrieve"], spans["generate"]
    assert (
        root.parent_id is None and ret.parent_id == root.span_id and gen.parent_id == root.span_id
    )
    assert ret.span_type == "RETRIEVER" and ret.inputs == {
        "query": "What is the capital of France?",
        "k": 2,
    }
    assert ret.outputs == [
        {
            "page_content": "Paris is the capital of France.",
            "metadata": {"source": "wiki"},
            "id": "d1",
        }
    ]
    assert Document.from_dict(ret.outputs[0]).id == "d1"
    assert root.attributes["version"] == 3 and gen.attributes["model"] == "m"
    assert gen.events[0].name == "cache_miss" and gen.events[0].attributes["nested"] == {"a": 1}
    assert trace.info.state == TraceState.OK and trace.info.name == "rag-answer"
    assert trace.data.inputs == {"question": "What is the capital of France?"}
    assert trace.data.outputs == "Paris"
    assert trace.info.request_preview == "What is the capital of France?"
    assert trace.info.response_preview == "Paris"
    assert all(s.trace_id == trace.info.trace_id for s in trace.data.spans)
    assert trace.info.trace_id.startswith("tr-") and len(trace.info.trace_id) == 35


def test_exception_sets_error_records_event_and_reraises(sqlite_tracking):
    class Boom(RuntimeError):
        pass

    @tracejudge.trace
    def inner():
        raise Boom("model unavailable")

    @tracejudge.trace
    def outer():
        inner()

    with pytest.raises(Boom, match="model unavailable") as info:
        outer()
    assert type(info.value) is Boom
    trace = _last_trace()
    spans = _spans_by_name(trace)
    assert trace.info.state == TraceState.ERROR
    for span in spans.values():
        assert span.status.status_code == SpanStatusCode.ERROR
        event = span.events[0]
        assert event.name == "exception" and event.attributes["exception.type"] == "Boom"
        assert "model unavailable" in event.attributes["exception.message"]
        assert "Traceback" in event.attributes["exception.stacktrace"]


def test_async_functions_nest_across_gathered_tasks(sqlite_tracking):
    @tracejudge.trace
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.01 * (3 - i))
        with tracejudge.start_span(f"inner-{i}"):
            await asyncio.sleep(0)
        return i * 2

    @tracejudge.trace
    async def fan_out() -> list[int]:
        return list(await asyncio.gather(*(fetch(i) for i in range(3))))

    assert asyncio.run(fan_out()) == [0, 2, 4]
    trace = _last_trace()
    spans = trace.data.spans
    root = next(s for s in spans if s.name == "fan_out")
    fetches = [s for s in spans if s.name == "fetch"]
    assert len(fetches) == 3 and all(s.parent_id == root.span_id for s in fetches)
    for i in range(3):
        inner = next(s for s in spans if s.name == f"inner-{i}")
        parent = next(s for s in fetches if s.span_id == inner.parent_id)
        assert parent.inputs == {"i": i} and parent.outputs == i * 2


def test_concurrent_asyncio_tasks_make_separate_traces(sqlite_tracking):
    @tracejudge.trace
    async def request(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    async def main():
        await asyncio.gather(*(request(i) for i in range(5)))

    asyncio.run(main())
    tracejudge.flush()
    traces = tracejudge.search_traces(return_type="list")
    assert sorted(t.data.inputs["i"] for t in traces) == [0, 1, 2, 3, 4]
    assert all(len(t.data.spans) == 1 for t in traces)


def test_trace_ids_follow_start_time(sqlite_tracking):
    """The SDK's trace ids lead with the start millisecond, so the store's indexes grow at
    their right edge instead of at random places (see tracejudge.entities.ids)."""

    @tracejudge.trace
    def step() -> None:
        pass

    ids = []
    for _ in range(5):
        step()
        ids.append(tracejudge.get_last_active_trace_id())
        time.sleep(0.002)  # the next trace starts in a later millisecond
    assert ids == sorted(ids) and len(set(ids)) == 5
    now_ms = time.time_ns() // 1_000_000
    assert 0 <= now_ms - int(ids[0][3:15], 16) < 600_000


def test_threads_start_their_own_trace_unless_given_the_context(sqlite_tracking):
    @tracejudge.trace
    def work(i: int) -> int:
        return i

    @tracejudge.trace
    def parent() -> list[int]:
        with ThreadPoolExecutor(max_workers=3) as pool:
            # copied context: the work nests under this span
            futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(3)]
            ctx_results = [f.result() for f in futures]
            # no context: each call is a trace of its own
            list(pool.map(work, [10, 11]))
        return ctx_results

    parent()
    tracejudge.flush()
    traces = tracejudge.search_traces(return_type="list", order_by=["timestamp ASC"])
    parent_trace = next(t for t in traces if t.info.name == "parent")
    children = [s for s in parent_trace.data.spans if s.name == "work"]
    assert sorted(s.inputs["i"] for s in children) == [0, 1, 2]
    loose = [t for t in traces if t.info.name == "work"]
    assert sorted(t.data.inputs["i"] for t in loose) == [10, 11]


def test_many_threads_tracing_at_once_keep_spans_apart(sqlite_tracking):
    @tracejudge.trace
    def leaf(tag: str) -> str:
        return tag

    @tracejudge.trace
    def job(n: int) -> int:
        for j in range(3):
            leaf(f"{n}-{j}")
        return n

    threads = [threading.Thread(target=job, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracejudge.flush()
    traces = tracejudge.search_traces(return_type="list")
    assert len(traces) == 8
    for t in traces:
        n = t.data.inputs["n"]
        leaves = sorted(s.inputs["tag"] for s in t.data.spans if s.name == "leaf")
        assert leaves == [f"{n}-{j}" for j in range(3)]


def test_generators_record_yielded_items(sqlite_tracking):
    @tracejudge.trace
    def stream_tokens(text: str):
        for word in text.split():
            with tracejudge.start_span("token"):
                pass
            yield word
        return "done"

    @tracejudge.trace
    def consume() -> str:
        return " ".join(stream_tokens("a b c"))

    assert consume() == "a b c"
    trace = _last_trace()
    gen = _spans_by_name(trace)["stream_tokens"]
    assert gen.outputs == ["a", "b", "c"] and gen.inputs == {"text": "a b c"}
    tokens = [s for s in trace.data.spans if s.name == "token"]
    assert len(tokens) == 3 and all(s.parent_id == gen.span_id for s in tokens)


def test_generator_closed_early_and_failing_generator(sqlite_tracking):
    @tracejudge.trace
    def numbers():
        yield from range(100)

    gen = numbers()
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()
    trace = _last_trace()
    assert trace.data.spans[0].outputs == [0, 1] and trace.info.state == TraceState.OK

    @tracejudge.trace
    def broken():
        yield 1
        raise KeyError("missing")

    with pytest.raises(KeyError):
        list(broken())
    trace = _last_trace()
    assert trace.info.state == TraceState.ERROR and trace.data.spans[0].outputs == [1]


def test_async_generators(sqlite_tracking):
    @tracejudge.trace
    async def agen(n: int):
        for i in range(n):
            await asyncio.sleep(0)
            with tracejudge.start_span("step"):
                pass
            yield i

    @tracejudge.trace
    async def main() -> list[int]:
        return [x async for x in agen(3)]

    assert asyncio.run(main()) == [0, 1, 2]
    trace = _last_trace()
    spans = _spans_by_name(trace)
    assert spans["agen"].outputs == [0, 1, 2]
    steps = [s for s in trace.data.spans if s.name == "step"]
    assert len(steps) == 3 and all(s.parent_id == spans["agen"].span_id for s in steps)


def test_methods_classmethods_staticmethods(sqlite_tracking):
    class Bot:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        @tracejudge.trace
        def reply(self, name: str) -> str:
            return f"{self.greeting} {name}"

        @tracejudge.trace(span_type="TOOL")
        @classmethod
        def make(cls, greeting: str) -> Bot:
            return cls(greeting)

        @tracejudge.trace
        @staticmethod
        def shout(text: str) -> str:
            return text.upper()

        @tracejudge.trace
        async def areply(self, name: str) -> str:
            return name

    bot = Bot.make("hi")
    assert _last_trace().data.spans[0].inputs == {"greeting": "hi"}
    assert _last_trace().data.spans[0].span_type == "TOOL"
    assert bot.reply("ana") == "hi ana"
    assert _last_trace().data.spans[0].inputs == {"name": "ana"}
    assert Bot.shout("x") == "X" and bot.shout("y") == "Y"
    assert _last_trace().data.spans[0].outputs == "Y"
    assert asyncio.run(bot.areply("z")) == "z"
    assert Bot.reply.__name__ == "reply" and Bot.reply.__tracejudge_traced__


def test_start_span_api_and_current_span(sqlite_tracking):
    assert tracejudge.get_current_active_span() is None
    with tracejudge.start_span("outer", span_type=SpanType.AGENT) as outer:
        assert tracejudge.get_current_active_span() is outer
        outer.set_inputs({"goal": "plan"})
        outer.set_attributes({"a": 1, "b": [1, 2]})
        with tracejudge.start_span("tool", span_type="TOOL") as tool:
            assert tracejudge.get_current_active_span() is tool
            assert tool.parent_id == outer.span_id and tool.trace_id == outer.trace_id
            tool.set_status("ERROR", "bad tool result")
        assert tracejudge.get_current_active_span() is outer
        outer.set_outputs({"plan": ["x"]})
    assert tracejudge.get_current_active_span() is None
    trace = _last_trace()
    spans = _spans_by_name(trace)
    assert spans["outer"].attributes == {"a": 1, "b": [1, 2]}
    assert spans["tool"].status.status_code == SpanStatusCode.ERROR
    assert spans["tool"].status.description == "bad tool result"
    assert trace.info.state == TraceState.OK  # the root succeeded


def test_update_current_trace(sqlite_tracking, caplog):
    @tracejudge.trace
    def handle(q: str) -> str:
        tracejudge.update_current_trace(
            tags={"env": "prod", "n": 1},
            metadata={"app_version": "1.2"},
            client_request_id="req-7",
            request_preview="custom preview",
            session_id="s-1",
            user="ana",
            state="ERROR",
        )
        return "fine"

    handle("question")
    trace = _last_trace()
    assert trace.info.tags == {"env": "prod", "n": "1"}
    assert trace.info.trace_metadata["app_version"] == "1.2"
    assert trace.info.trace_metadata["tracejudge.trace.session"] == "s-1"
    assert trace.info.trace_metadata["tracejudge.trace.user"] == "ana"
    assert trace.info.client_request_id == "req-7"
    assert trace.info.request_preview == "custom preview"
    assert trace.info.state == TraceState.ERROR
    with caplog.at_level(logging.WARNING, logger="tracejudge.tracing"):
        tracejudge.update_current_trace(tags={"x": "y"})
    assert "outside of a trace" in caplog.text


def test_experiments_and_default(sqlite_tracking):
    @tracejudge.trace
    def f() -> int:
        return 1

    f()
    tracejudge.flush()
    assert _last_trace().info.experiment_id == "0"
    exp = tracejudge.set_experiment("rag-prod")
    assert tracejudge.get_experiment_by_name("rag-prod") == exp
    f()
    trace = _last_trace()
    assert trace.info.experiment_id == exp.experiment_id
    assert len(tracejudge.search_traces(return_type="list")) == 1  # the active experiment only
    assert (
        len(tracejudge.search_traces(experiment_ids=["0", exp.experiment_id], return_type="list"))
        == 2
    )


def test_tracking_uri_from_environment(tmp_path, monkeypatch):
    from tracejudge.store import get_tracking_uri, set_tracking_uri

    set_tracking_uri(None)
    monkeypatch.setenv("TRACEJUDGE_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")
    assert get_tracking_uri() == f"sqlite:///{tmp_path}/env.db"
    monkeypatch.delenv("TRACEJUDGE_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert get_tracking_uri() == f"sqlite:///{tmp_path}/tracejudge.db"
    set_tracking_uri(tmp_path / "plain.db")
    assert get_tracking_uri() == f"sqlite:///{tmp_path}/plain.db"
    set_tracking_uri(None)


def test_assessment_api_on_traced_calls(tracking):
    @tracejudge.trace
    def answer(q: str) -> str:
        return "Paris"

    answer("capital?")
    tid = tracejudge.get_last_active_trace_id()
    # no flush here: the assessment call must find a trace still waiting to be written
    fb = tracejudge.log_feedback(
        tid,
        "trustworthiness",
        0.31,
        rationale="reflections disagree",
        source=tracejudge.AssessmentSource("LLM_JUDGE", "local:/default"),
    )
    exp = tracejudge.log_expectation(tid, "expected_response", "Paris")
    assert tracejudge.get_assessment(tid, fb.assessment_id).value == 0.31
    tracejudge.update_assessment(tid, fb.assessment_id, rationale="updated")
    new = tracejudge.override_feedback(tid, fb.assessment_id, 0.9, rationale="a human checked")
    assert new.source.source_type == "HUMAN" and new.overrides == fb.assessment_id
    tracejudge.set_trace_tag(tid, "reviewed", "yes")
    df = tracejudge.search_traces(
        filter_string="feedback.trustworthiness > 0.5 AND tag.reviewed = 'yes'"
    )
    assert list(df.trace_id) == [tid]
    assert df.expectations[0] == {"expected_response": "Paris"}
    tracejudge.delete_trace_tag(tid, "reviewed")
    tracejudge.delete_assessment(tid, exp.assessment_id)
    assert tracejudge.search_traces(filter_string="tag.reviewed = 'yes'").empty
    with pytest.raises(tracejudge.TraceJudgeError):
        tracejudge.log_feedback("tr-" + "0" * 32, "x", 1)
    with pytest.raises(tracejudge.TraceJudgeError, match="value or an error"):
        tracejudge.log_feedback(tid, "x")


def test_search_traces_dataframe_columns_and_paging(sqlite_tracking):
    @tracejudge.trace
    def f(i: int) -> dict:
        return {"i": i}

    for i in range(7):
        f(i)
        time.sleep(0.002)  # timestamps have millisecond resolution
    df = tracejudge.search_traces(order_by=["timestamp ASC"])
    for column in [
        "trace_id",
        "trace",
        "request_time",
        "state",
        "execution_duration",
        "request",
        "response",
        "inputs",
        "outputs",
        "expectations",
        "assessments",
        "tags",
        "trace_metadata",
        "spans",
    ]:
        assert column in df.columns
    assert list(df.inputs) == [{"i": i} for i in range(7)]
    assert len(tracejudge.search_traces(max_results=3)) == 3
    client = tracejudge.Client()
    first = client.search_traces(max_results=4, order_by="timestamp ASC")
    second = client.search_traces(max_results=4, order_by="timestamp ASC", page_token=first.token)
    assert [t.data.inputs["i"] for t in first + second] == list(range(7)) and second.token is None
    light = tracejudge.search_traces(include_spans=False, return_type="list")
    assert all(t.data.spans == [] for t in light)
    with pytest.raises(tracejudge.TraceJudgeError):
        tracejudge.search_traces(return_type="arrow")


def test_broken_store_never_raises_and_counts_drops(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    tracejudge.set_tracking_uri(f"sqlite:///{blocker}/cannot/exist.db")
    stats = tracejudge.get_export_stats()
    before = stats.dropped_store_error

    @tracejudge.trace
    def f() -> int:
        return 42

    try:
        with caplog.at_level(logging.WARNING, logger="tracejudge.tracing"):
            assert f() == 42
            assert f() == 42
            tracejudge.flush()
    finally:
        tracejudge.set_tracking_uri(None)
    assert stats.dropped_store_error - before == 2
    assert "dropped traces" in caplog.text and "StoreError" in (stats.last_error or "")


def test_full_queue_drops_are_counted_and_warned(sqlite_tracking, caplog):
    from tracejudge.tracing.export import ExportItem, TraceExporter

    exporter = TraceExporter(max_queue=1)
    with exporter.paused(), caplog.at_level(logging.WARNING, logger="tracejudge.tracing"):
        for _ in range(3):
            exporter.submit(ExportItem(sqlite_tracking, None, []))
        assert exporter.stats.dropped_queue_full == 2
    assert exporter.flush(timeout=10)
    assert "export queue is full" in caplog.text


def test_span_helpers_never_raise(sqlite_tracking):
    class Unserialisable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    with tracejudge.start_span("weird") as span:
        span.set_inputs({"x": Unserialisable()})
        span.set_attribute("tracejudge.spanInputs", "reserved")  # logged, ignored
        span.set_status("NOT-A-STATUS")
    assert _last_trace().data.spans[0].name == "weird"


def test_child_that_outlives_its_root_is_appended_later(sqlite_tracking):
    from tracejudge.tracing.fluent import open_detached_span

    with tracejudge.start_span("root"):
        straggler = open_detached_span("background-task", "TOOL")
        straggler.set_inputs({"job": 1})
    tracejudge.flush()
    trace_id = tracejudge.get_last_active_trace_id()
    assert [s.name for s in tracejudge.get_trace(trace_id).data.spans] == ["root"]
    straggler.set_outputs("finished late")
    straggler.end()
    tracejudge.flush()
    spans = {s.name: s for s in tracejudge.get_trace(trace_id).data.spans}
    assert spans["background-task"].outputs == "finished late"
    assert spans["background-task"].span_type == "TOOL" and spans["background-task"].inputs == {
        "job": 1
    }
    assert spans["background-task"].parent_id == spans["root"].span_id


def test_other_span_processors_see_tracejudge_attributes(sqlite_tracking):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracejudge.tracing import provider

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with tracejudge.start_span("llm", span_type="LLM", attributes={"model": "m"}) as span:
            span.set_inputs({"q": 1})
            span.set_outputs("a")
    finally:
        provider._mirror_attributes = False
        provider.get_tracer_provider()._active_span_processor._span_processors = tuple(
            p
            for p in provider.get_tracer_provider()._active_span_processor._span_processors
            if not isinstance(p, SimpleSpanProcessor)
        )
    (otel_span,) = exporter.get_finished_spans()
    assert otel_span.attributes["tracejudge.spanType"] == '"LLM"'
    assert otel_span.attributes["tracejudge.spanInputs"] == '{"q":1}'
    assert otel_span.attributes["tracejudge.spanOutputs"] == '"a"'
    assert otel_span.attributes["model"] == '"m"'
    # the same span read back from an OpenTelemetry exporter decodes to the same entity
    from tracejudge.tracing.otel_convert import span_from_otel

    stored = _last_trace().data.spans[0]
    assert span_from_otel(otel_span).to_dict() == stored.to_dict()


def test_a_recording_span_records_what_an_sdk_span_records():
    """tracejudge's own spans (RecordingSpan) and SDK spans, read by the processor, give the same
    record for the same calls: parent, attributes, events and status included."""
    from types import SimpleNamespace

    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from tracejudge.tracing.otel_convert import record_from_otel
    from tracejudge.tracing.recording_span import RecordingSpan

    def act(root, child):
        child.set_attributes({"k": "v", "n": 3})
        child.add_event("saw", {"what": "x"}, timestamp=123)
        child.set_status(Status(StatusCode.ERROR, "broke"))
        child.end()
        root.end()

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root", end_on_exit=False) as sdk_root:
        act(sdk_root, tracer.start_span("child"))
    sdk_child, sdk_root_span = (record_from_otel(s) for s in exporter.get_finished_spans())

    ended = []  # what a RecordingSpan hands the assembler
    assembler = SimpleNamespace(started=lambda *ids: None, ended=ended.append)
    ours_root = RecordingSpan.start("root", assembler)
    with otel_trace.use_span(ours_root, end_on_exit=False):
        act(ours_root, RecordingSpan.start("child", assembler))
    ours_child, ours_root_record = ended

    def comparable(record):
        return record._replace(trace_id=0, span_id=0, start_time_ns=0, end_time_ns=0)

    assert ours_child.parent_id == ours_root_record.span_id
    assert sdk_child.parent_id == sdk_root_span.span_id
    assert comparable(ours_child)._replace(parent_id=0) == comparable(sdk_child)._replace(
        parent_id=0
    )
    assert comparable(ours_root_record) == comparable(sdk_root_span)
    assert sdk_child.attributes == {"k": "v", "n": 3}
    assert sdk_child.events == (("saw", 123, {"what": "x"}),)
    assert (sdk_child.status_code, sdk_child.status_description) == (StatusCode.ERROR, "broke")
    assert sdk_root_span.events == () and sdk_root_span.parent_id is None
