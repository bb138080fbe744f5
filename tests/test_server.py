"""The tracking server as a real process on 127.0.0.1: the SDK, search, verdicts and evaluate()
through it, its errors, its tokens, and being killed in the middle of a burst."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

import tracejudge
from conftest import ServerProcess
from tracejudge.entities import RunStatus
from tracejudge.errors import AuthenticationError, InvalidFilterError, TraceNotFoundError
from tracejudge.models import reset_models
from tracejudge.scorers import Safety
from tracejudge.store import SqlTraceStore, reset_stores, set_tracking_uri
from tracejudge.testing import ChatServer, Reply


@pytest.fixture
def through_server(tracking_server, sqlite_uri, monkeypatch):
    """The SDK pointed at a server process; yields (server URL, the file it writes)."""
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    set_tracking_uri(tracking_server)
    yield tracking_server, sqlite_uri
    tracejudge.flush()
    set_tracking_uri(None)
    reset_stores()


def test_the_sdk_search_verdicts_and_evaluate_work_unchanged_through_a_server(through_server):
    _url, database = through_server

    @tracejudge.trace
    def app(question: str) -> str:
        tracejudge.update_current_trace(tags={"env": "prod"})
        return "Lyon" if "wrong" in question else "Paris"

    tracejudge.set_experiment("served")
    dropped_before = tracejudge.get_export_stats().dropped  # counts are per process
    for i in range(20):
        app(f"capital of France? {'wrong' if i % 4 == 0 else ''} {i}")
    assert tracejudge.flush()
    assert tracejudge.get_export_stats().dropped == dropped_before
    found = tracejudge.search_traces(filter_string="tag.env = 'prod'", return_type="list")
    assert len(found) == 20
    tracejudge.log_feedback(found[0].info.trace_id, "helpful", True, source="HUMAN")
    with pytest.raises(InvalidFilterError, match="expected"):
        tracejudge.search_traces(filter_string="tag.env = ")

    reset_models()
    no = '{"rationale": "wrong city", "verdict": "no"}'
    yes = '{"rationale": "fine", "verdict": "yes"}'

    def judge(request):
        text = json.dumps(request["messages"])
        if request.get("max_tokens") == 2:
            return Reply("no" if "Lyon" in text else "yes")
        return Reply(no if "Lyon" in text else yes)

    with ChatServer(judge) as chat:
        result = tracejudge.evaluate(
            tracejudge.search_traces(),
            scorers=[Safety(model=f"openai-compatible:/j?base_url={chat.base_url}")],
        )
    reset_models()
    assert result.run.status == RunStatus.FINISHED
    assert result.result_df["safety/value"].value_counts().to_dict() == {"yes": 15, "no": 5}

    # what the server wrote is in its own database, as the SQL store reads it
    direct = SqlTraceStore(database)
    try:
        assert direct.get_run(result.run.run_id).status == RunStatus.FINISHED
        stored = direct.search_traces(filter_string="feedback.safety = 'no'", max_results=100)
        assert len(stored) == 5
        assert all(t.info.tags["env"] == "prod" for t in stored)
    finally:
        direct.close()


def test_errors_are_json_with_a_stable_code_and_the_right_status(tracking_server):
    with httpx.Client(base_url=tracking_server) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/docs").status_code == 200
        bad = http.post("/api/v1/traces/search", json={"filter_string": "tag.x = "})
        assert bad.status_code == 400 and bad.json()["error_code"] == "InvalidFilterError"
        assert "expected" in bad.json()["message"]
        missing = http.get("/api/v1/runs/run-nope")
        assert missing.status_code == 404 and missing.json()["error_code"] == "RunNotFoundError"
        broken = http.post(
            "/api/v1/traces/batch",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400 and broken.json()["error_code"] == "InvalidArgumentError"
        unknown = http.post("/api/v1/traces/search", json={"filter": "x"})
        assert unknown.status_code == 400 and "filter" in unknown.json()["message"]
        wrong_shape = http.post("/api/v1/traces/batch", json={"traces": [{"info": {}}]})
        assert wrong_shape.status_code == 400
        injection = http.post(
            "/api/v1/traces/search", json={"filter_string": "tag.x = 'a'; DROP TABLE traces; --'"}
        )
        assert injection.status_code == 400
        assert http.post("/api/v1/traces/search", json={}).json()["traces"] == []
        gone = http.get("/api/v1/traces/tr-" + "0" * 32)
        assert gone.status_code == 404 and gone.json()["error_code"] == "TraceNotFoundError"
        nowhere = http.get("/api/v1/nowhere")
        assert nowhere.status_code == 404 and nowhere.json()["error_code"] == "NotFound"
        wrong_method = http.delete("/api/v1/experiments")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error_code"] == "MethodNotAllowed"
        trace = _trace_dict("tr-" + "1" * 32)
        for experiment in ("999", "not-a-number"):
            orphan = http.post(
                "/api/v1/traces/batch",
                json={
                    "traces": [{**trace, "info": {**trace["info"], "experiment_id": experiment}}]
                },
            )
            assert orphan.status_code == 404, orphan.text  # the client's error, not "unavailable"
            assert orphan.json()["error_code"] == "ExperimentNotFoundError"
        typo = {**trace, "info": {**trace["info"], "trace_metdata": {"user": "u1"}}}
        misspelt = http.post("/api/v1/traces/batch", json={"traces": [typo]})
        assert misspelt.status_code == 400 and "info.trace_metdata" in misspelt.json()["message"]
        assert http.post(
            "/api/v1/traces/get", json={"trace_ids": [trace["info"]["trace_id"]]}
        ).json() == {"traces": []}
        assert http.post("/api/v1/traces/batch", json={"traces": [trace]}).status_code == 200
        got = http.post(
            "/api/v1/traces/get", json={"trace_ids": [trace["info"]["trace_id"], "tr-x"]}
        ).json()["traces"]
        assert [t["info"]["trace_id"] for t in got] == [trace["info"]["trace_id"]]
    store = tracejudge.store.HttpTraceStore(tracking_server)
    try:
        with pytest.raises(TraceNotFoundError):
            store.set_trace_tag("tr-missing", "k", "v")
    finally:
        store.close()


def _trace_dict(trace_id: str) -> dict:
    from tracejudge.entities import Trace, TraceData, TraceInfo

    info = TraceInfo(trace_id=trace_id, experiment_id="0", request_time=1_700_000_000_000)
    return Trace(info, TraceData([])).to_dict()


def test_an_oversized_body_gets_413_and_changes_nothing(sqlite_uri):
    server = ServerProcess(sqlite_uri, "--max-body-mb", "1")
    try:
        with httpx.Client(base_url=server.url) as http:
            big = {"name": "x" * (2 * 1024 * 1024)}
            reply = http.post("/api/v1/experiments", json=big)
            assert reply.status_code == 413 and reply.json()["error_code"] == "RequestTooLargeError"

            def chunked():  # no Content-Length: the limit is met while reading
                yield b'{"name": "'
                for _ in range(40):
                    yield b"x" * 65536
                yield b'"}'

            streamed = http.post(
                "/api/v1/experiments",
                content=chunked(),
                headers={"Content-Type": "application/json"},
            )
            assert streamed.status_code == 413, streamed.text
            assert streamed.json()["error_code"] == "RequestTooLargeError"
            import gzip

            bomb = gzip.compress(b"\0" * (3 * 1024 * 1024))  # small on the wire, 3 MB inside
            inflated = http.post(
                "/v1/traces",
                content=bomb,
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            )
            assert inflated.status_code == 413, inflated.text
            names = [e["name"] for e in http.get("/api/v1/experiments").json()["experiments"]]
            assert names == ["Default"]
    finally:
        server.stop()


def test_bearer_tokens(sqlite_uri, monkeypatch):
    server = ServerProcess(
        sqlite_uri, "--auth-token", "s3cret", "--auth-token", "other", "--read-only-token", "viewer"
    )
    try:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/api/v1/experiments").status_code == 401
            assert http.get("/health").status_code == 200  # for load balancers
            ok = http.get("/api/v1/experiments", headers={"Authorization": "Bearer other"})
            assert ok.status_code == 200
            viewer = {"Authorization": "Bearer viewer"}
            assert http.post("/api/v1/traces/search", json={}, headers=viewer).status_code == 200
            refused = http.post("/api/v1/experiments", json={"name": "x"}, headers=viewer)
            assert refused.status_code == 403 and "only read" in refused.json()["message"]
            writer = {"Authorization": "Bearer s3cret"}
            made = http.post("/api/v1/datasets/create", json={"name": "d"}, headers=writer).json()
            ref = {"dataset_id": made["dataset_id"]}  # a viewer reads datasets, changes none
            assert http.post("/api/v1/datasets/records", json=ref, headers=viewer).json() == {
                "records": []
            }
            add = {**ref, "records": [{"inputs": {"q": "x"}}]}
            merged = http.post("/api/v1/datasets/merge-records", json=add, headers=viewer)
            assert merged.status_code == 403
            wrong = http.get("/api/v1/experiments", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error_code"] == "AuthenticationError"
            # OTLP ingestion and the metrics need a token too; only /health is open
            otlp = http.post(
                "/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"}
            )
            assert otlp.status_code == 401
            assert http.get("/metrics").status_code == 401
            assert http.get("/metrics", headers=viewer).status_code == 200
            written = http.post(
                "/v1/traces",
                content=b"",
                headers={"Content-Type": "application/x-protobuf", **viewer},
            )
            assert written.status_code == 403
        store = tracejudge.store.HttpTraceStore(server.url)
        with pytest.raises(AuthenticationError):
            store.list_experiments()
        store.close()
        monkeypatch.setenv("TRACEJUDGE_TRACKING_TOKEN", "s3cret")
        reset_stores()
        assert [e.name for e in tracejudge.store.get_store(server.url).list_experiments()] == [
            "Default"
        ]
    finally:
        reset_stores()
        server.stop()


def test_a_non_loopback_address_needs_a_token():
    done = subprocess.run(
        [sys.executable, "-m", "tracejudge.cli.main", "server", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "without a token" in done.stderr


BURST = """
import sys, time, tracejudge
tracejudge.set_tracking_uri(sys.argv[1])
for i in range(int(sys.argv[2])):
    with tracejudge.start_span(f"burst-{i}"):
        pass
    time.sleep(0.004)  # a steady stream (about 4 s), so that batches are in flight at the kill
ok = tracejudge.flush(timeout=240)
stats = tracejudge.get_export_stats()
print(f"done {ok} exported={stats.exported} dropped={stats.dropped} retries={stats.retries}",
      flush=True)
"""


def _committed(sqlite_uri: str) -> int:
    """Traces committed to the server's file, read beside the server (WAL: readers never block)."""
    import sqlite3

    path = sqlite_uri.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_a_server_killed_mid_burst_loses_no_acknowledged_trace(tmp_path, sqlite_uri):
    """SIGKILL the server while an app streams 1,000 traces (some already committed, batches in
    flight), keep it down for a few seconds, restart it on the same port: every trace is in the
    store afterwards, none twice, and the app's exporter dropped none.

    The app's HTTP store gives up on a call after one retry, so what carries the traces through
    the outage is the exporter holding them (TRACEJUDGE_EXPORT_RETRY_S), not one call's backoff.
    """
    server = ServerProcess(sqlite_uri)
    port = server.url.rsplit(":", 1)[1]
    script = tmp_path / "burst.py"
    script.write_text(textwrap.dedent(BURST))
    app = subprocess.Popen(
        [sys.executable, str(script), server.url, "1000"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TRACEJUDGE_TRACKING_RETRIES": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while _committed(sqlite_uri) < 100:  # some batches are in: the burst is under way
            assert time.monotonic() < deadline and app.poll() is None, "the burst did not start"
            time.sleep(0.01)
        server.kill()  # mid-burst: batches in flight get no answer
        at_kill = _committed(sqlite_uri)
        assert 100 <= at_kill < 1000, at_kill  # killed in the middle, not after the end
        time.sleep(3)  # longer than one call's retries: the exporter must hold the traces
        server = ServerProcess(sqlite_uri, "--port", port)  # the same address, the same file
        out, _ = app.communicate(timeout=300)
        summary = out.strip().splitlines()[-1]
        assert summary.startswith("done True"), summary
        direct = SqlTraceStore(sqlite_uri)
        try:
            stored = direct.search_traces(max_results=5000, include_spans=False)
        finally:
            direct.close()
        names = [t.info.name for t in stored]
        assert len(names) == len(set(names)) == 1000  # every one, none twice
        assert "exported=1000 dropped=0" in summary
        assert "retries=0" not in summary  # the outage was met, and waited out
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGKILL)
        server.stop()


def test_metrics_count_ingested_traces_and_requests_by_route(through_server):
    url, _ = through_server
    for i in range(3):
        with tracejudge.start_span(f"m{i}"):
            pass
    assert tracejudge.flush()
    with httpx.Client(base_url=url) as http:
        http.get("/api/v1/runs/run-nope")
        text = http.get("/metrics").text
    assert "tracejudge_traces_ingested_total 3" in text
    assert 'tracejudge_requests_total{route="/api/v1/runs/{run_id}",status="404"} 1' in text
    assert 'tracejudge_requests_rejected_total{status="404"} 1' in text
    assert 'tracejudge_request_seconds_bucket{route="/api/v1/traces/batch",le="+Inf"}' in text
    assert "tracejudge_requests_in_flight " in text


WRITERS = """
import sys, threading, tracejudge
tracejudge.set_tracking_uri(sys.argv[1])
proc = sys.argv[2]

def write(thread):
    for i in range(5):
        with tracejudge.start_span(f"p{proc}-t{thread}-{i}"):
            tracejudge.update_current_trace(tags={"proc": proc})

threads = [threading.Thread(target=write, args=(t,)) for t in range(50)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ok = tracejudge.flush(timeout=240)
stats = tracejudge.get_export_stats()
print(f"done {ok} exported={stats.exported} dropped={stats.dropped}", flush=True)
"""


@pytest.mark.postgres
def test_200_writer_threads_in_4_processes_through_a_2_worker_server_on_postgres(
    tmp_path, postgres_uri
):
    server = ServerProcess(postgres_uri, "--workers", "2")
    script = tmp_path / "writers.py"
    script.write_text(textwrap.dedent(WRITERS))
    try:
        apps = [
            subprocess.Popen(
                [sys.executable, str(script), server.url, str(p)], stdout=subprocess.PIPE, text=True
            )
            for p in range(4)
        ]
        outputs = [app.communicate(timeout=300)[0].strip() for app in apps]
        assert all(o.endswith("exported=250 dropped=0") for o in outputs), outputs
        direct = SqlTraceStore(postgres_uri)
        try:
            stored = direct.search_traces(max_results=5000, include_spans=False)
        finally:
            direct.close()
        names = [t.info.name for t in stored]
        assert len(names) == len(set(names)) == 1000
    finally:
        server.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_feedback_loop_example_app_end_to_end(tracking_server, sqlite_uri):
    """examples/feedback_app: an answer carries its trace id; the end user's thumbs-down
    becomes human feedback on that trace, on the tracking server."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    port = _free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.feedback_app.app:app", "--port", str(port)],
        cwd=root,
        env={**os.environ, "TRACEJUDGE_TRACKING_URI": tracking_server},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(240):  # until it accepts connections (bounded: 2 minutes)
                try:
                    http.get("/docs")
                    break
                except httpx.TransportError:
                    if app.poll() is not None:
                        raise AssertionError(app.stderr.read() if app.stderr else "died") from None
                    time.sleep(0.5)
            asked = http.post("/ask", json={"question": "How tall is the Eiffel Tower?"}).json()
            assert asked["answer"] == "The Eiffel Tower is 330 metres tall."
            given = http.post(
                "/feedback",
                json={
                    "trace_id": asked["trace_id"],
                    "user_id": "u-42",
                    "thumbs_up": False,
                    "comment": "it is taller with the antennas",
                },
            )
            assert given.status_code == 200, given.text
            unknown = http.post(
                "/feedback", json={"trace_id": "tr-0", "user_id": "u", "thumbs_up": True}
            )
            assert unknown.status_code == 404
            # concurrent requests: each answer carries its own request's trace
            from concurrent.futures import ThreadPoolExecutor

            questions = [f"How tall is the Eiffel Tower? (asked {i})" for i in range(40)]
            with ThreadPoolExecutor(16) as pool:
                answers = list(
                    pool.map(lambda q: http.post("/ask", json={"question": q}).json(), questions)
                )
    finally:
        app.terminate()
        app.wait(timeout=60)
    direct = SqlTraceStore(sqlite_uri)
    try:
        for question, reply in zip(questions, answers, strict=True):
            own = direct.get_trace(reply["trace_id"], include_spans=False)
            assert own is not None and question in json.dumps(own.data.request), question
        trace = direct.get_trace(asked["trace_id"])
        [feedback] = trace.search_assessments("user_satisfaction")
        assert feedback.value is False and feedback.rationale == "it is taller with the antennas"
        assert feedback.source.source_type == "HUMAN" and feedback.source.source_id == "u-42"
        assert {s.span_type for s in trace.data.spans} >= {"RETRIEVER", "CHAT_MODEL"}
    finally:
        direct.close()


def test_the_cli_works_against_a_server(through_server):
    from click.testing import CliRunner

    from tracejudge.cli.main import main

    url, _ = through_server
    tracejudge.set_experiment("cli-served")
    with tracejudge.start_span("hello"):
        tracejudge.update_current_trace(tags={"env": "prod"})
    assert tracejudge.flush()
    runner = CliRunner()
    listed = runner.invoke(main, ["--tracking-uri", url, "experiments", "list"])
    assert listed.exit_code == 0 and "cli-served" in listed.output
    found = runner.invoke(
        main,
        [
            "--tracking-uri",
            url,
            "traces",
            "search",
            "--experiment",
            "cli-served",
            "--filter",
            "tag.env = 'prod'",
            "--format",
            "json",
        ],
    )
    assert found.exit_code == 0, found.output
    assert [t["info"]["name"] for t in json.loads(found.output)] == ["hello"]
    bad = runner.invoke(main, ["--tracking-uri", url, "traces", "search", "--filter", "tag.env ="])
    assert (
        bad.exit_code == 2 and "InvalidFilterError" not in bad.output and "expected" in bad.output
    )


class _Scripted:
    """An HTTP server on 127.0.0.1 answering each request with the next scripted (status,
    headers, body); the last one repeats."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        import http.server
        import threading

        self.answers = list(answers)
        self.seen: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append(f"{self.command} {self.path}")
                status, headers, body = outer.answers[min(len(outer.seen), len(outer.answers)) - 1]
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_http_store_retries_429_and_5xx_then_gives_a_typed_error():
    from tracejudge.errors import StoreUnavailableError

    ok = json.dumps({"experiments": [{"experiment_id": "0", "name": "Default"}]}).encode()
    busy = json.dumps({"error_code": "StoreUnavailableError", "message": "db restarting"}).encode()
    scripted = _Scripted(
        (429, {"Retry-After": "0"}, b"{}"),
        (500, {}, b"Internal Server Error"),
        (503, {}, busy),
        (200, {}, ok),
    )
    store = tracejudge.store.HttpTraceStore(scripted.url, backoff_s=0.01)
    try:
        assert [e.name for e in store.list_experiments()] == ["Default"]
        assert len(scripted.seen) == 4  # 429, 500 and 503 were each tried again
        scripted.answers, scripted.seen = [(503, {}, busy)], []
        with pytest.raises(StoreUnavailableError, match="gave up after 7 attempts"):
            store.list_experiments()
        assert len(scripted.seen) == 7
        scripted.answers, scripted.seen = (
            [(400, {}, b'{"error_code": "InvalidFilterError", "message": "bad"}')],
            [],
        )
        with pytest.raises(InvalidFilterError):
            store.search_traces(filter_string="x")
        assert len(scripted.seen) == 1  # a client error is not retried
    finally:
        store.close()
        scripted.close()
