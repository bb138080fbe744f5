"""Ingest through the tracking server, against writing to the same database directly.

    python benchmarks/server_ingest.py [--traces 2000] [--spans 5] [--clients 1,8,64]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--search-traces 20000]

For each database (a fresh SQLite file; a fresh schema on PostgreSQL when reachable) and each
number of concurrent clients: traces/s and spans/s written in batches of 50 (the SDK exporter's
shape) through a real ``tracejudge server`` process with the HTTP store, through OTLP/HTTP
(protobuf, one request per batch), and straight into the SQL store in this process (the
baseline, measured in the same run). Then p50/p99 of a filtered first search page through the
server and directly. Clients are threads of this one process (64 processes would not fit two
cores), so the client side's own CPU is part of every figure. Not measured here: MLflow's
server as a peer unless ``--mlflow-python`` names an interpreter with MLflow installed (in
its own virtual environment: ``python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import create_engine, text

from common import write_result
from tracejudge.entities import Span, SpanStatus, SpanStatusCode, Trace, TraceData, TraceInfo
from tracejudge.entities.trace import new_trace_id
from tracejudge.store import HttpTraceStore, SqlTraceStore
from tracejudge.testing.server_process import ServerProcess

BATCH = 50


def make_trace(spans: int, i: int) -> Trace:
    tid = new_trace_id()
    start = time.time_ns()
    status = SpanStatus(SpanStatusCode.OK)
    root = Span(
        tid,
        "0" * 15 + "1",
        None,
        "answer",
        "CHAIN",
        start,
        start + 10**8,
        status,
        {"question": f"q{i}"},
        f"a{i}",
    )
    kids = [
        Span(
            tid,
            f"{k + 2:016x}",
            root.span_id,
            f"step{k}",
            "LLM",
            start,
            start + 10**7,
            status,
            {"messages": [{"role": "user", "content": f"q{i}"}]},
            {"text": "x" * 200},
        )
        for k in range(spans - 1)
    ]
    info = TraceInfo(
        trace_id=tid,
        experiment_id="0",
        request_time=start // 10**6,
        execution_duration=100,
        name="answer",
        request_preview=f"q{i}",
        response_preview=f"a{i}",
        tags={"env": "bench", "i": str(i % 10)},
    )
    return Trace(info, TraceData([root, *kids], f'{{"question": "q{i}"}}', f'"a{i}"'))


def otlp_batch(spans: int, n: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(n):
        trace_id = secrets.token_bytes(16)
        root_id = secrets.token_bytes(8)
        for k in range(spans):
            span = scope.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if k == 0 else secrets.token_bytes(8)
            if k:
                span.parent_span_id = root_id
            span.name = "answer" if k == 0 else f"step{k}"
            span.start_time_unix_nano = now
            span.end_time_unix_nano = now + 10**7
            kind = span.attributes.add()
            kind.key, kind.value.string_value = (
                "openinference.span.kind",
                "CHAIN" if k == 0 else "LLM",
            )
            value = span.attributes.add()
            value.key, value.value.string_value = "input.value", f"q{i}"
    return request.SerializeToString()


def rate(clients: int, batches: list[Callable[[], None]]) -> float:
    """Batches per second with ``clients`` threads working through the list."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(b) for b in batches]:
            future.result()
    return len(batches) / (time.perf_counter() - start)


def ingest_rows(store_uri: str, label: str, args: argparse.Namespace) -> list[str]:
    rows = []
    server = ServerProcess(store_uri, "--workers", str(args.server_workers))
    http_store = HttpTraceStore(server.url)
    direct = SqlTraceStore(store_uri)
    try:
        n_batches = args.traces // BATCH
        for clients in [int(c) for c in args.clients.split(",")]:
            traces = [[make_trace(args.spans, i) for i in range(BATCH)] for _ in range(n_batches)]
            base = rate(clients, [lambda b=b: direct.log_traces(b) for b in traces])
            traces = [[make_trace(args.spans, i) for i in range(BATCH)] for _ in range(n_batches)]
            served = rate(clients, [lambda b=b: http_store.log_traces(b) for b in traces])
            bodies = [otlp_batch(args.spans, BATCH) for _ in range(n_batches)]
            with httpx.Client(
                base_url=server.url, timeout=120, limits=httpx.Limits(max_connections=64)
            ) as http:

                def send(body: bytes) -> None:
                    reply = http.post(
                        "/v1/traces",
                        content=body,
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                    reply.raise_for_status()

                otlp = rate(clients, [lambda b=b: send(b) for b in bodies])
            for how, value in (
                ("direct SQL store (baseline)", base),
                ("server, HTTP store", served),
                ("server, OTLP protobuf", otlp),
            ):
                traces_s = value * BATCH
                rows.append(
                    f"| {label} | {clients} | {how} | {traces_s:,.0f} | {traces_s * args.spans:,.0f} "
                    f"| {value / base:.2f} |"
                )
                print(rows[-1], flush=True)
        sent = 3 * n_batches * BATCH * len(args.clients.split(","))
        stored = len(direct.search_traces(max_results=sent + 1000, include_spans=False))
        rows.append(
            f"| {label} | all | traces sent / stored (lost) | {sent:,} / {stored:,} "
            f"({sent - stored:,}) | | |"
        )
        print(rows[-1], flush=True)
    finally:
        http_store.close()
        direct.close()
        server.stop()
    return rows


def search_rows(store_uri: str, label: str, args: argparse.Namespace) -> list[str]:
    direct = SqlTraceStore(store_uri)
    have = len(direct.search_traces(max_results=args.search_traces, include_spans=False))
    for start in range(have, args.search_traces, 500):
        direct.log_traces(
            [make_trace(2, i) for i in range(start, min(start + 500, args.search_traces))]
        )
    server = ServerProcess(store_uri)
    http_store = HttpTraceStore(server.url)
    rows = []
    try:
        for how, store in (("direct", direct), ("through the server", http_store)):
            times = []
            for _ in range(60):
                t = time.perf_counter()
                store.search_traces(
                    filter_string="tag.i = '3'", max_results=50, include_spans=False
                )
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            rows.append(
                f"| {label} | {how} | {statistics.median(times):.1f} | {times[int(0.99 * len(times)) - 1]:.1f} |"
            )
            print(rows[-1], flush=True)
    finally:
        http_store.close()
        direct.close()
        server.stop()
    return rows


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _burst(
    python: str, sdk: str, url: str, args: argparse.Namespace, threads: int
) -> tuple[float, int]:
    script = Path(__file__).with_name("sdk_burst.py")
    done = subprocess.run(
        [python, str(script), sdk, url, str(args.sdk_traces), str(args.spans), str(threads)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "true"},
    )
    if done.returncode != 0:
        raise SystemExit(f"{sdk} burst failed: {done.stderr[-2000:]}")
    seconds, acknowledged = done.stdout.split()[-2:]
    return float(seconds), int(acknowledged)


def mlflow_rows(mlflow_python: str, args: argparse.Namespace) -> list[str]:
    """The same SDK workload through tracejudge's server and MLflow's, each on a fresh SQLite file."""
    folder = Path(tempfile.mkdtemp(prefix="tj-vs-mlflow-"))
    rows = []
    for threads in (1, 8, 64):
        ours = ServerProcess(f"sqlite:///{folder / f'tj-{threads}.db'}")
        try:
            tj_s, tj_n = _burst(sys.executable, "tracejudge", ours.url, args, threads)
        finally:
            ours.stop()
        port = _free_port()
        mlflow_bin = str(Path(mlflow_python).with_name("mlflow"))
        theirs = subprocess.Popen(
            [
                mlflow_bin,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{folder / f'mlflow-{threads}.db'}",
                "--default-artifact-root",
                str(folder / f"artifacts-{threads}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            ml_s, ml_n = _burst(mlflow_python, "mlflow", url, args, threads)
        finally:
            theirs.terminate()
            theirs.wait(timeout=60)
        tj_rate, ml_rate = tj_n / tj_s, ml_n / ml_s
        rows.append(
            f"| {threads} | {tj_rate:,.0f} ({tj_n} stored) | {ml_rate:,.1f} ({ml_n} stored) "
            f"| {tj_rate / ml_rate:.1f}x |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--spans", type=int, default=5)
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--search-traces", type=int, default=100_000)
    parser.add_argument(
        "--mlflow-python",
        help="an interpreter with mlflow>=3 installed: also run the same SDK workload through "
        "'mlflow server' and through ours",
    )
    parser.add_argument("--sdk-traces", type=int, default=500, help="traces per SDK burst")
    parser.add_argument("--server-workers", type=int, default=1, help="tracejudge server --workers")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tj-ingest-"))
    stores: list[tuple[str, str, Callable[[], None]]] = [
        ("SQLite", f"sqlite:///{folder / 'ingest.db'}", lambda: None)
    ]
    schema = f"tj_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

        stores.append(("PostgreSQL", f"{args.postgres}?options=-csearch_path%3D{schema}", drop))
    except Exception as exc:
        print(f"(PostgreSQL not measured: {exc})", file=sys.stderr)
    lines = [
        "# Ingest through the tracking server (2 cores)",
        "",
        f"{args.traces} traces of {args.spans} spans per cell, in batches of {BATCH}; clients are "
        f"threads of one process; the server runs {args.server_workers} worker(s). Ratio: "
        "against the direct SQL store with as many clients, measured in the same run.",
        "",
        "| database | clients | path | traces/s | spans/s | ratio to direct |",
        "|---|---|---|---|---|---|",
    ]
    try:
        for label, uri, _ in stores:
            lines += ingest_rows(uri, label, args)
        lines += [
            "",
            f"Search, first page of 50 filtered by a tag, {args.search_traces:,} traces "
            "(60 queries):",
            "",
            "| database | path | p50 ms | p99 ms |",
            "|---|---|---|---|",
        ]
        for label, uri, _ in stores:
            lines += search_rows(uri, label, args)
    finally:
        for _, _, cleanup in stores:
            cleanup()
    lines += ["", "## The same SDK workload through `mlflow server` and `tracejudge server`", ""]
    if args.mlflow_python:
        lines += [
            f"{args.sdk_traces} traces of {args.spans} spans made with each SDK's own span API "
            "from N threads of one process, each SDK's server on a fresh SQLite file, timed from "
            "the first span until the SDK has flushed; stored = found by the SDK's search "
            "afterwards. MLflow with MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=true.",
            "",
            "| threads | tracejudge traces/s | MLflow traces/s | ratio |",
            "|---|---|---|---|",
            *mlflow_rows(args.mlflow_python, args),
        ]
    else:
        lines.append(
            "Not measured: give --mlflow-python with an interpreter that has mlflow>=3 installed."
        )
    path = write_result("server_ingest.md", lines)
    print(f"(written to {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TRACEJUDGE_PROGRESS", "0")
    sys.exit(main())
