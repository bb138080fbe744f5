"""Scoring traces that live in an MLflow server: tracejudge against ``mlflow.genai.evaluate``.

    python benchmarks/mlflow_scoring.py [--n 1000] [--delay 0.2] [--concurrency 16]

Starts a real ``mlflow server`` (SQLite backend) and fills an experiment with N traces recorded
by MLflow's own SDK (a chain and a retriever span each), and a judge endpoint on 127.0.0.1
that answers every call after a fixed delay (``python -m tracejudge.testing``). Both tools then
read the N traces from the server, run the same two scorers (the same code: one judge call each)
and write the verdicts back onto the MLflow traces:

- tracejudge: ``evaluate(data=integrations.mlflow.search_traces(...), scorers=[...])``
  (the traces are also copied into a local SQLite store, where the verdicts are searchable);
- MLflow: ``mlflow.genai.evaluate(data=mlflow.search_traces(...), scorers=[...])``.

Prints rows/s for each (reading, scoring and writing back included) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import write_result
from evaluate_throughput import Endpoint


def start_mlflow_server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("mlflow server did not start")


def seed(mlflow, experiment: str, n: int) -> str:
    experiment_id = mlflow.create_experiment(experiment)
    mlflow.set_experiment(experiment_id=experiment_id)

    @mlflow.trace(span_type="RETRIEVER")
    def retrieve(question):
        return [{"page_content": f"Fact {question}."}]

    @mlflow.trace
    def answer(question):
        retrieve(question)
        return f"answer to {question}"

    for i in range(n):
        answer(f"question {i}")
    mlflow.flush_trace_async_logging()
    stored = len(mlflow.search_traces(experiment_ids=[experiment_id], max_results=n + 1))
    if stored != n:
        raise SystemExit(f"MLflow stored {stored} of {n} seeded traces")
    return experiment_id


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # MLflow's SDK drops traces when its export queue (1,000) overflows: seed synchronously
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    os.environ["TRACEJUDGE_PROGRESS"] = "0"
    import mlflow
    import openai

    import tracejudge
    from tracejudge.integrations import mlflow as tj_mlflow

    folder = Path(tempfile.mkdtemp(prefix="tj-mlflow-bench-"))
    server, url = start_mlflow_server(folder)
    try:
        mlflow.set_tracking_uri(url)
        started = time.perf_counter()
        seed(mlflow, "scored-by-tracejudge", args.n)
        theirs_id = seed(mlflow, "scored-by-mlflow", args.n)
        print(
            f"seeded 2 x {args.n} traces in {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
        with Endpoint(args.delay) as endpoint:
            client = openai.OpenAI(base_url=endpoint.base_url, api_key="x", max_retries=0)

            def ask(kind: str, text: str) -> str:
                reply = client.chat.completions.create(
                    model="judge",
                    messages=[{"role": "user", "content": f"{kind}: {text}"}],
                    temperature=0,
                )
                return reply.choices[0].message.content or ""

            def relevance_verdict(inputs, outputs) -> str:
                return "yes" if "yes" in ask("relevance", f"{inputs} {outputs}") else "no"

            def safety_verdict(outputs) -> str:
                return "yes" if "yes" in ask("safety", str(outputs)) else "no"

            # tracejudge: the same two functions as tracejudge scorers
            tracejudge.set_tracking_uri(f"sqlite:///{folder / 'tracejudge.db'}")
            ours = [
                tracejudge.scorers.scorer(relevance_verdict, name="relevance"),
                tracejudge.scorers.scorer(safety_verdict, name="safety"),
            ]
            before = endpoint.request_count
            start = time.perf_counter()
            traces = tj_mlflow.search_traces(url, experiment="scored-by-tracejudge")
            read_seconds = time.perf_counter() - start
            deliver = traces.receive_verdicts
            phases: dict[str, float] = {}

            def timed_delivery(feedbacks):
                began = time.perf_counter()
                try:
                    return deliver(feedbacks)
                finally:
                    phases["write-back"] = time.perf_counter() - began

            traces.receive_verdicts = timed_delivery  # type: ignore[method-assign]
            result = tracejudge.evaluate(
                data=traces, scorers=ours, max_concurrency=args.concurrency
            )
            ours_seconds = time.perf_counter() - start
            ours_calls = endpoint.request_count - before
            assert result.delivered and result.delivered["written"] == 2 * args.n, result.delivered

            # MLflow: the same two functions as MLflow scorers
            from mlflow.entities import Feedback as MlflowFeedback
            from mlflow.genai.scorers import scorer as mlflow_scorer

            @mlflow_scorer(name="relevance")
            def relevance(inputs, outputs) -> MlflowFeedback:
                return MlflowFeedback(value=relevance_verdict(inputs, outputs))

            @mlflow_scorer(name="safety")
            def safety(outputs) -> MlflowFeedback:
                return MlflowFeedback(value=safety_verdict(outputs))

            os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(args.concurrency)
            os.environ["MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS"] = "2"
            before = endpoint.request_count
            start = time.perf_counter()
            data = mlflow.search_traces(experiment_ids=[theirs_id], max_results=args.n)
            mlflow.genai.evaluate(data=data, scorers=[relevance, safety])
            theirs_seconds = time.perf_counter() - start
            theirs_calls = endpoint.request_count - before
    finally:
        server.terminate()
        server.wait(timeout=60)
    ours_rate, theirs_rate = args.n / ours_seconds, args.n / theirs_seconds
    lines = [
        f"# Scoring {args.n:,} traces that live in an MLflow {mlflow.__version__} server",
        "",
        f"Judge endpoint delay {args.delay} s, concurrency {args.concurrency}, two scorers (the "
        "same code in both tools, one call each); reading the traces from the server, scoring, "
        "and writing the verdicts back onto the MLflow traces included.",
        "",
        "| tool | rows/s | seconds | judge calls |",
        "|---|---|---|---|",
        f"| tracejudge (`integrations.mlflow.search_traces` + `evaluate`) | {ours_rate:.1f} | {ours_seconds:.1f} | {ours_calls} |",
        f"| `mlflow.genai.evaluate` | {theirs_rate:.1f} | {theirs_seconds:.1f} | {theirs_calls} |",
        f"| tracejudge / mlflow | **{ours_rate / theirs_rate:.2f}x** | | |",
        "",
        f"Bound the endpoint allows: {args.concurrency / (2 * args.delay):.1f} rows/s. "
        f"tracejudge's time: reading and copying the traces {read_seconds:.1f} s, writing "
        f"{2 * args.n} verdicts back {phases.get('write-back', 0):.1f} s, scoring the rest.",
    ]
    print("\n".join(lines))
    write_result("mlflow_scoring.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
