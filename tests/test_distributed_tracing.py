"""Distributed tracing: a caller here, a callee service in another process, one trace.

Both write to the same store (an SQLite file, PostgreSQL, a tracking server process); each
writes its part when it ends, in either order, and the store merges them."""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest

import tracejudge
from conftest import _reset_experiment
from factories import make_trace
from tracejudge.entities import TraceState
from tracejudge.testing.server_process import ServerProcess
from tracejudge.testing.traced_service import ANSWER
from tracejudge.tracing import constants as c
from tracejudge.tracing.trace_merge import merge_part

QUESTION = "How long do refunds take?"


@pytest.fixture(params=["sqlite", "postgresql", "server"])
def shared_uri(request, sqlite_uri):
    if request.param == "server":
        server = ServerProcess(sqlite_uri)
        yield server.url
        server.stop()
    else:
        yield sqlite_uri if request.param == "sqlite" else request.getfixturevalue("postgres_uri")


@pytest.fixture
def callee(shared_uri):
    """The URL of a traced service process writing to the same store."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracejudge.testing.traced_service", "--tracking-uri", shared_uri],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), url
    yield url
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture
def tracking(shared_uri):
    tracejudge.set_tracking_uri(shared_uri)
    tracejudge.set_experiment("distributed")
    yield shared_uri
    tracejudge.flush()
    tracejudge.set_tracking_uri(None)
    _reset_experiment()


@pytest.mark.parametrize("callee_first", [True, False], ids=["callee-first", "caller-first"])
def test_one_trace_across_two_processes(tracking, callee, callee_first):
    seen_in_between = {}

    @tracejudge.trace(name="agent")
    def agent(question: str) -> str:
        with tracejudge.start_span("call-service") as span:
            headers = tracejudge.get_tracing_context_headers()
            reply = httpx.post(
                f"{callee}/lookup",
                params={"flush": int(callee_first)},
                json={"question": question},
                headers=headers,
                timeout=120,
            )
            seen_in_between["caller_span"] = span.span_id
        if callee_first:  # the callee's part is stored, the caller's not yet
            seen_in_between["trace"] = tracejudge.get_trace(tracejudge.get_active_trace_id())
        tracejudge.update_current_trace(tags={"user": "ana"}, response_preview="checked answer")
        return reply.json()["answer"]

    assert agent(QUESTION) == ANSWER
    tracejudge.flush()
    if not callee_first:
        httpx.post(f"{callee}/flush", timeout=120)
    trace_id = tracejudge.get_last_active_trace_id()
    trace = tracejudge.get_trace(trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert sorted(spans) == ["agent", "call-service", "chat", "lookup", "search"]
    assert spans["call-service"].span_id == seen_in_between["caller_span"]
    assert spans["lookup"].parent_id == spans["call-service"].span_id
    assert spans["chat"].parent_id == spans["lookup"].span_id
    assert spans["agent"].parent_id is None
    assert trace.info.name == "agent" and trace.info.state == TraceState.OK
    assert QUESTION in trace.info.request_preview
    assert trace.info.response_preview == "checked answer"  # what the caller set is kept
    assert trace.info.tags["user"] == "ana"
    assert '"total_tokens": 37' in trace.info.trace_metadata[c.TRACE_TOKEN_USAGE]
    assert [t.info.trace_id for t in tracejudge.search_traces(return_type="list")] == [trace_id]
    if callee_first:
        early = seen_in_between["trace"]
        assert early.info.state == TraceState.IN_PROGRESS
        assert {s.name for s in early.data.spans} == {"lookup", "search", "chat"}


def test_continued_in_the_same_process_is_one_trace(sqlite_tracking):
    with tracejudge.start_span("caller") as caller:
        headers = tracejudge.get_tracing_context_headers()

        def callee() -> None:  # another thread, as a server's handler would be
            with tracejudge.continue_trace(headers), tracejudge.start_span("callee"):
                pass

        worker = threading.Thread(target=callee)
        worker.start()
        worker.join()
    tracejudge.flush()
    trace = tracejudge.get_trace(caller.trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert spans["callee"].parent_id == spans["caller"].span_id
    assert len(tracejudge.search_traces(return_type="list")) == 1


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"traceparent": "garbage"},
        {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"},
    ],
)
def test_bad_headers_start_a_trace_of_its_own_and_never_raise(sqlite_tracking, headers, caplog):
    with tracejudge.continue_trace(headers), tracejudge.start_span("handler") as span:
        pass
    tracejudge.flush()
    trace = tracejudge.get_trace(span.trace_id)
    assert trace.info.state == TraceState.OK and trace.data.spans[0].parent_id is None
    assert "no valid traceparent" in caplog.text


def test_headers_in_any_letter_case_and_outside_a_span(sqlite_tracking):
    assert tracejudge.get_tracing_context_headers() == {}
    with tracejudge.start_span("caller") as caller:
        value = tracejudge.get_tracing_context_headers()["traceparent"]
    assert value == f"00-{caller.trace_id[3:]}-{caller.span_id}-01"
    with tracejudge.continue_trace({"TraceParent": value}), tracejudge.start_span("callee") as sp:
        pass
    assert sp.trace_id == caller.trace_id
    from tracejudge.tracing import (
        get_tracing_context_headers_for_http_request,
        set_tracing_context_from_http_request_headers,
    )

    assert get_tracing_context_headers_for_http_request is tracejudge.get_tracing_context_headers
    assert set_tracing_context_from_http_request_headers is tracejudge.continue_trace


def _part(trace, names):
    part = make_trace()
    part.info = trace.info
    part.data.spans = [s for s in trace.data.spans if s.name in names]
    return part


def test_merge_rules():
    """The root's part gives the trace its fields, whichever lands first; spans, tags and
    metadata are the union; the trace stays in the experiment of its first part."""
    whole = make_trace(experiment_id="7", tags={"a": "1"}, span_types=("RETRIEVER", "LLM"))
    root = whole.data.spans[0]
    callee_part = make_trace(experiment_id="9", tags={"b": "2"})
    callee_part.data.spans = [s for s in whole.data.spans if s.parent_id is not None]
    callee_part.info.trace_id = whole.info.trace_id
    callee_part.info.name = "not the root"

    first = merge_part(None, callee_part)
    assert first.info.state == TraceState.IN_PROGRESS and first.info.execution_duration is None
    caller_part = make_trace(experiment_id="7", tags={"a": "1"})
    caller_part.info = whole.info
    caller_part.data.spans = [root]
    merged = merge_part(first, caller_part)
    assert merged.info.experiment_id == "9"  # where the first part landed
    assert merged.info.name == whole.info.name and merged.info.state == TraceState.OK
    assert merged.info.tags == {"a": "1", "b": "2"}
    assert {s.span_id for s in merged.data.spans} == {s.span_id for s in whole.data.spans}
    again = merge_part(merged, callee_part)  # a part written twice changes nothing
    assert again.info.name == whole.info.name and len(again.data.spans) == len(whole.data.spans)
