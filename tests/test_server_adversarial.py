"""Client mistakes that once got a 500 (or a 503 the client retried for seconds) from a real
tracking server process, or were stored and broke later reads; found by an audit. Each gets
a clear 4xx now, and the good data beside it is kept."""

from __future__ import annotations

import gzip
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tracejudge.entities import Trace, TraceData, TraceInfo
from tracejudge.errors import DataRefusedError
from tracejudge.store import HttpTraceStore
from tracejudge.testing.server_process import ServerProcess
from tracejudge.tracing.otlp_decode import parse_request


def _trace(trace_id: str, **info: object) -> dict:
    trace = Trace(
        TraceInfo(trace_id=trace_id, experiment_id="0", request_time=1_700_000_000_000),
        TraceData([]),
    ).to_dict()
    trace["info"].update(info)
    return trace


def _otlp_span(trace_hex: str, span_hex: str, name: str) -> dict:
    span = {
        "traceId": trace_hex,
        "spanId": span_hex,
        "name": name,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
    }
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}


@pytest.fixture
def http(tracking_server):
    with httpx.Client(base_url=tracking_server, timeout=60) as client:
        yield client


def _client_error(reply: httpx.Response) -> str:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text[:300])
    return reply.json()["error_code"]


def test_numbers_past_64_bits_and_wrong_types_are_refused_with_the_request(http):
    batch = "/api/v1/traces/batch"
    refused = [
        _trace("tr-" + "1" * 32, request_time=10**30),
        _trace("tr-" + "2" * 32, execution_duration="slow"),
        _trace("tr-" + "3" * 32, name=["x"]),
        _trace("tr-" + "4" * 32, request_preview=0),
    ]
    for trace in refused:
        assert _client_error(http.post(batch, json={"traces": [trace]}))
    assert _client_error(http.post("/api/v1/runs/search", json={"max_results": 2**63}))
    assert _client_error(http.post("/api/v1/runs/search", json={"max_results": -1}))
    assert _client_error(http.get("/api/v1/experiments/99999999999999999999999"))
    # values that were stored as sent and then broke every read of their trace or run
    tid = "tr-" + "6" * 32
    assert http.post(batch, json={"traces": [_trace(tid)]}).status_code == 200
    for odd in ({"valid": "false"}, {"create_time_ms": "yesterday"}):
        feedback = {"kind": "feedback", "name": "q", "value": 1, "trace_id": tid, **odd}
        assert _client_error(
            http.post("/api/v1/assessments/batch", json={"assessments": [feedback]})
        )
    for scorers in (["a"], [{"no": "name"}]):
        run = {"run_id": "run-x", "experiment_id": "0", "name": "r", "scorers": scorers}
        assert _client_error(http.post("/api/v1/runs", json={"run": run}))
    good = _trace("tr-" + "5" * 32)
    assert http.post(batch, json={"traces": [good]}).status_code == 200
    stored = http.post("/api/v1/traces/search", json={}).json()["traces"]
    assert sorted(t["info"]["trace_id"] for t in stored) == [good["info"]["trace_id"], tid]
    assert http.get("/experiments/0/traces").status_code == 200  # every read still works


def test_a_value_no_column_holds_is_not_retried_as_if_the_server_were_down(tracking_server):
    store = HttpTraceStore(tracking_server)
    try:
        bad = Trace.from_dict(_trace("tr-" + "6" * 32))
        bad.info.name = ["x"]  # type: ignore[assignment]
        started = time.monotonic()
        with pytest.raises(DataRefusedError):
            store.log_traces([bad])
        assert time.monotonic() - started < 5  # answered, not retried for seconds
    finally:
        store.close()


def test_lone_surrogates_in_names_and_filters_are_client_errors(http):
    surrogate = "\ud800"

    def post(path: str, body: dict) -> httpx.Response:  # JSON's own escape: \\ud800
        content = json.dumps(body).encode()
        return http.post(path, content=content, headers={"Content-Type": "application/json"})

    replies = [
        post("/api/v1/experiments", {"name": f"x{surrogate}"}),
        post("/api/v1/traces/search", {"filter_string": f"tag.k{surrogate} = 'v'"}),
        post("/api/v1/traces/get", {"trace_ids": [surrogate]}),
        post("/api/v1/datasets/create", {"name": surrogate}),
    ]
    for reply in replies:
        assert _client_error(reply)


def test_an_assessment_update_of_the_wrong_shape_is_refused(http):
    trace = _trace("tr-" + "7" * 32)
    trace["info"]["assessments"] = [
        {"kind": "feedback", "name": "ok", "value": True, "metadata": {"n": 10**30}}
    ]
    assert http.post("/api/v1/traces/batch", json={"traces": [trace]}).status_code == 200
    got = http.get(f"/api/v1/traces/{trace['info']['trace_id']}")  # its huge number reads back
    assert got.status_code == 200, got.text[:300]
    (assessment,) = got.json()["trace"]["info"]["assessments"]
    path = f"/api/v1/traces/{trace['info']['trace_id']}/assessments/{assessment['assessment_id']}"
    for changes in ({"metadata": "oops"}, {"source": "someone"}, {"error": 5}):
        assert _client_error(http.patch(path, json={"changes": changes}))


def test_otlp_bodies_of_every_odd_shape(http):
    json_headers = {"Content-Type": "application/json"}
    for body in (b"null", b"5", b"[" * 50_000):
        assert _client_error(http.post("/v1/traces", content=body, headers=json_headers))
    first, second = (
        parse_request(
            json.dumps(_otlp_span(t * 32, s * 16, name)).encode(), "application/json"
        ).SerializeToString()
        for t, s, name in (("a", "b", "first"), ("c", "d", "second"))
    )
    gzipped = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    two_members = gzip.compress(first) + gzip.compress(second)  # valid gzip (RFC 1952)
    reply = http.post("/v1/traces", content=two_members, headers=gzipped)
    assert reply.status_code == 200, reply.text[:300]
    garbage = gzip.compress(first) + b"junk"
    assert _client_error(http.post("/v1/traces", content=garbage, headers=gzipped))
    # one span with an invalid trace id among good ones: the good ones are kept
    # spans with an invalid trace id, an end before the start, a time no column holds,
    # among good ones: the good ones are kept, the others named in the partial success
    mixed = _otlp_span("e" * 32, "f" * 16, "good")
    spans = mixed["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for fault in (
        {"traceId": "0" * 32},
        {"spanId": "1" * 16, "endTimeUnixNano": "1600000000000000000"},
        {"spanId": "2" * 16, "startTimeUnixNano": str(2**63)},
    ):
        spans.append(dict(spans[0], **fault))
    partial = http.post("/v1/traces", json=mixed)
    assert partial.status_code == 200
    assert partial.json()["partialSuccess"]["rejectedSpans"] == "3"
    names = {
        t["info"]["name"] for t in http.post("/api/v1/traces/search", json={}).json()["traces"]
    }
    assert names == {"first", "second", "good"}


def test_a_client_that_stalls_mid_body_gets_a_408_and_loses_its_connection(sqlite_uri, monkeypatch):
    """uvicorn waits for a body for ever; every stalled client held a connection open."""
    monkeypatch.setenv("TRACEJUDGE_SERVER_BODY_TIMEOUT_S", "1")
    server = ServerProcess(sqlite_uri)
    try:
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname, address.port), timeout=60) as stalled:
            stalled.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"resourceSpans": ['
            )
            answer = b""
            while chunk := stalled.recv(4096):  # until the server closes the connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"RequestTimeoutError" in answer
        healthy = httpx.post(f"{server.url}/v1/traces", json={"resourceSpans": []}, timeout=60)
        assert healthy.status_code == 200  # a body that arrives is read as before
    finally:
        server.stop()
