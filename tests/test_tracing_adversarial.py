"""Values and call patterns that once raised into the app or lost a trace (found by an audit of
the tracing SDK): each is recorded, in a real SQLite store, and the app goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from opentelemetry import trace as otel_trace

import tracejudge
from tracejudge.entities import Span, SpanStatus, SpanStatusCode, SpanType
from tracejudge.entities.span_tree import span_tree
from tracejudge.errors import InvalidArgumentError
from tracejudge.store import SqlTraceStore
from tracejudge.tracing.provider import get_assembler


class _RaisingLookup:
    """Like a context-local proxy (Flask's ``request``) outside its context: every attribute
    lookup but a few raises something other than AttributeError."""

    def __getattr__(self, name: str):
        raise RuntimeError(f"working outside of a request (looked up {name!r})")

    def __repr__(self) -> str:
        return "<proxy>"


class _RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __hash__(self) -> int:
        return 1


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


def _last_trace():
    assert tracejudge.flush()
    return tracejudge.get_trace(tracejudge.get_last_active_trace_id())


HOSTILE = [
    10**5000,  # beyond the 4,300 digits Python writes as text
    {"n": 10**5000},
    _RaisingLookup(),
    {_RaisingStr(): 1},
    {_RaisingStr()},
]


@pytest.mark.parametrize("value", HOSTILE, ids=["huge-int", "in-dict", "proxy", "key", "member"])
def test_hostile_values_are_recorded_not_raised(sqlite_tracking, value):
    @tracejudge.trace
    def echo(x):
        return x

    assert echo(value) is value  # the app gets its value back, untouched
    trace = _last_trace()
    assert trace.info.name == "echo"  # this call's trace, not the one before
    with tracejudge.start_span("manual", attributes={"a": value}) as span:
        span.set_inputs(value)
        span.set_outputs({"v": value})
        span.set_attribute("b", value)
        span.set_span_type(_RaisingStr())  # ignored, with a warning
    trace = _last_trace()
    assert trace.info.name == "manual" and trace.data.spans[0].span_type == SpanType.UNKNOWN
    assert get_assembler()._live == {}  # nothing left open


def test_an_exception_whose_message_raises_still_marks_the_trace_as_failed(sqlite_tracking):
    @tracejudge.trace
    def fails():
        raise _Unprintable()

    with pytest.raises(_Unprintable):
        fails()
    trace = _last_trace()
    assert trace.info.state.value == "ERROR"
    span = trace.data.spans[0]
    assert span.status.status_code == SpanStatusCode.ERROR
    event = next(e for e in span.events if e.name == "exception")
    assert event.attributes["exception.type"] == "_Unprintable"


def test_a_span_ended_through_opentelemetry_keeps_its_inputs_and_outputs(sqlite_tracking):
    with tracejudge.start_span("answer") as span:
        span.set_inputs({"question": "q"})
        otel_trace.get_current_span().end()  # an instrumentation ending the current span
        span.set_outputs("the answer")
    trace = _last_trace()
    assert trace.data.spans[0].inputs == {"question": "q"}
    assert get_assembler()._orphan_payloads == {}


def test_a_stream_finished_after_its_request_does_not_capture_later_traces(sqlite_tracking):
    """A generator holding a span open across its yields, finished after the request span
    ended (a streamed response): the ended request span must not become current again."""

    def stream():
        with tracejudge.start_span("llm_stream"):
            yield "Hel"
            yield "lo"

    with tracejudge.start_span("request_1"):
        chunks = stream()
        next(chunks)
    assert list(chunks) == ["lo"]
    assert tracejudge.get_current_active_span() is None

    @tracejudge.trace
    def request_2():
        return "ok"

    request_2()
    assert tracejudge.flush()
    traces = {t.info.name: t for t in tracejudge.search_traces(return_type="list")}
    assert sorted(traces) == ["request_1", "request_2"]
    assert [s.name for s in traces["request_1"].data.spans] == ["request_1", "llm_stream"]
    assert [s.name for s in traces["request_2"].data.spans] == ["request_2"]


def test_a_stream_closed_inside_a_later_span_restores_no_ended_span(sqlite_tracking):
    def stream():
        with tracejudge.start_span("llm_stream"):
            yield 1
            yield 2

    chunks = stream()
    next(chunks)  # the stream's span is current now, outside any request
    with tracejudge.start_span("consumer"):
        assert list(chunks) == [2]  # the stream ends inside the consumer's span
    assert tracejudge.get_current_active_span() is None
    with tracejudge.start_span("next_request"):
        pass
    assert _last_trace().info.name == "next_request"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_the_assembler_is_locked_does_not_hang(sqlite_tracking):
    """The fork happens while the trace assembler's lock is held (as by another thread ending
    a trace at that moment): the child gets a new lock and writes its trace."""
    assembler = get_assembler()
    with assembler._lock:
        pid = os.fork()
        if pid == 0:  # the child: trace, flush, exit with the outcome
            code = 1
            try:

                @tracejudge.trace
                def in_child():
                    return 1

                in_child()
                code = 0 if tracejudge.flush(60) else 2
            finally:
                os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    names = [t.info.name for t in tracejudge.search_traces(return_type="list")]
    assert names == ["in_child"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_work_forked_under_an_open_span_is_a_trace_linked_to_it(sqlite_tracking):
    with tracejudge.start_span("parent_request") as parent:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with tracejudge.start_span("work_in_child"):
                    pass
                code = 0 if tracejudge.flush(60) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        parent_span_id = parent.span_id
    assert os.waitstatus_to_exitcode(status) == 0
    assert tracejudge.flush()
    traces = {t.info.name: t for t in tracejudge.search_traces(return_type="list")}
    assert sorted(traces) == ["parent_request", "work_in_child"]
    child = traces["work_in_child"]
    assert child.info.trace_metadata["tracejudge.otel.parentSpanId"] == parent_span_id


def test_children_ending_with_their_root_in_other_threads_are_all_kept(sqlite_tracking):
    """Many traces whose child span ends in another thread at about the moment the root ends:
    every child is stored (in its trace, or appended to it after)."""
    rounds = 300
    for _ in range(rounds):
        with tracejudge.start_span("root"):
            child = tracejudge.start_span("child")
            child.__enter__()
            ender = threading.Thread(target=child.__exit__, args=(None, None, None))
        ender.start()  # the child ends in another thread, racing the root's end
        ender.join()
    assert tracejudge.flush()
    traces = tracejudge.search_traces(return_type="list", max_results=rounds)
    assert len(traces) == rounds
    assert all(sorted(s.name for s in t.data.spans) == ["child", "root"] for t in traces)


def test_a_value_that_contains_itself_is_a_clear_error(sqlite_tracking):
    @tracejudge.trace
    def f():
        return 1

    f()
    trace_id = tracejudge.get_last_active_trace_id()
    looped: dict = {}
    looped["self"] = looped
    with pytest.raises(InvalidArgumentError, match="contains itself"):
        tracejudge.log_feedback(trace_id, name="a", value=looped)
    tracejudge.log_feedback(trace_id, name="b", value=1, metadata={"n": 10**5000})


def test_a_span_tree_thousands_of_levels_deep():
    ok = SpanStatus(SpanStatusCode.OK)
    spans = [
        Span("tr-1", f"{i:016x}", f"{i - 1:016x}" if i else None, f"s{i}", "CHAIN", i, i + 1, ok)
        for i in range(5000)
    ]
    tree = span_tree(list(reversed(spans)))
    assert [(s.name, depth) for s, depth in tree[:2]] == [("s0", 0), ("s1", 1)]
    assert tree[-1][1] == 4999


def _run_script(code: str, uri: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "TRACEJUDGE_TRACKING_URI": uri, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_spans_ending_at_and_after_exit_neither_hang_nor_vanish(sqlite_uri):
    """A traced generator left open and an object whose ``__del__`` is traced end their spans
    while the interpreter shuts down (no thread can start then: the process hung for good);
    a trace begun in an exit handler that runs after tracejudge's flush is still written."""
    done = _run_script(
        """
        import atexit

        def late_goodbye():
            goodbye()

        atexit.register(late_goodbye)  # registered first: runs after tracejudge's own flush
        import tracejudge

        @tracejudge.trace
        def goodbye():
            return "bye"

        @tracejudge.trace
        def stream():
            yield 1
            yield 2

        class Client:
            @tracejudge.trace
            def close(self):
                return None

            def __del__(self):
                self.close()

        CLIENT = Client()
        opened = stream()
        next(opened)

        @tracejudge.trace
        def answer():
            return "ok"

        answer()
        print("end of script", flush=True)
        """,
        sqlite_uri,
    )
    assert done.returncode == 0, done.stderr
    assert "end of script" in done.stdout
    store = SqlTraceStore(sqlite_uri)
    try:
        names = {t.info.name for t in store.search_traces(max_results=10)}
    finally:
        store.close()
    assert {"answer", "goodbye"} <= names


def test_an_unusable_tracking_uri_counts_its_traces_as_dropped(tmp_path):
    done = _run_script(
        """
        import tracejudge

        @tracejudge.trace
        def f():
            return 1

        f()
        tracejudge.flush()
        stats = tracejudge.get_export_stats()
        print(stats.dropped_store_error, stats.last_error.split(":")[0])
        """,
        "file",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "InvalidTrackingURIError"]


def test_values_sharing_members_and_cycles_are_recorded_at_once(sqlite_tracking):
    """Two dicts that refer to each other twice each: walked path by path, that was 2**50
    steps in the caller's thread."""
    a: dict = {}
    b = {"next": a, "prev": a}
    a.update(next=b, prev=b)

    @tracejudge.trace
    def walk(graph):
        return "ok"

    assert walk(a) == "ok"
    recorded = _last_trace().data.spans[0].inputs["graph"]
    assert recorded["next"]["next"] == "<cycle>"


def test_an_error_rising_through_a_deep_traced_recursion_is_recorded_once_per_level(
    sqlite_tracking,
):
    """Every level records the error, with the stack as the deepest traced level saw it (the
    call path above it is the span tree): formatting the whole traceback again at each level
    was quadratic in the depth."""

    @tracejudge.trace
    def walk(n):
        if n == 0:
            raise ValueError("not found")
        return walk(n - 1)

    with pytest.raises(ValueError):
        walk(300)
    spans = _last_trace().data.spans
    assert len(spans) == 301
    stacks = {
        e.attributes["exception.stacktrace"]
        for s in spans
        for e in s.events
        if e.name == "exception"
    }
    assert len(stacks) == 1 and "ValueError: not found" in stacks.pop()


def test_a_late_span_of_a_forgotten_trace_is_counted(sqlite_tracking, monkeypatch):
    from tracejudge.tracing import processor

    monkeypatch.setattr(processor, "_REMEMBERED_TRACES", 4)
    get_assembler()._written.clear()  # what earlier tests' traces left
    before = tracejudge.get_export_stats().late_spans_lost
    with tracejudge.start_span("request"):
        background = tracejudge.start_span("background")
        background.__enter__()
    for _ in range(8):  # its trace is written, then forgotten
        with tracejudge.start_span("other"):
            pass
    background.__exit__(None, None, None)
    assert tracejudge.get_export_stats().late_spans_lost == before + 1


def test_a_generator_that_reuses_its_buffer_is_recorded_as_it_was_consumed(sqlite_tracking):
    @tracejudge.trace
    def growing():
        buffer: list[int] = []
        for i in range(3):
            buffer.append(i)
            yield buffer

    seen = [list(chunk) for chunk in growing()]
    assert seen == [[0], [0, 1], [0, 1, 2]]
    assert _last_trace().data.spans[0].outputs == seen


def test_an_async_function_behind_a_plain_decorator_is_traced_while_it_runs(sqlite_tracking):
    """``@trace`` over a sync decorator of an ``async def`` gets a coroutine back: its span
    lasts until the coroutine is awaited to the end, holds its result, and is the parent of the
    spans begun while it runs. A sync wrapper that runs the coroutine itself is left alone."""
    import asyncio
    import functools

    def plain(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args)

        return wrapper

    @tracejudge.trace(span_type=SpanType.RETRIEVER)
    async def search(q):
        await asyncio.sleep(0)
        return ["doc"]

    @tracejudge.trace
    @plain
    async def answer(q):
        return f"{len(await search(q))} doc"

    @tracejudge.trace
    def runs_it_itself(q):
        return asyncio.run(search(q))

    assert asyncio.run(answer("q")) == "1 doc"
    spans = {s.name: s for s in _last_trace().data.spans}
    assert spans["answer"].outputs == "1 doc"
    assert spans["search"].parent_id == spans["answer"].span_id
    assert runs_it_itself("q") == ["doc"]
    assert _last_trace().data.spans[0].outputs == ["doc"]
