"""How close does evaluate() get to the throughput the judge endpoint allows?

    python benchmarks/evaluate_throughput.py [--n 2000] [--delay 0.2] [--concurrency 32]

A local OpenAI-compatible endpoint on 127.0.0.1 (``python -m tracejudge.testing``, in its
own process so it does not share this one's interpreter lock) answers every judge call after a
fixed delay.
N rows are evaluated with two built-in LLM scorers at concurrency C (each asks a written verdict
and a one-word probability probe: k = 4 calls per row, counted by the endpoint). The bound is
C / (delay x k) rows per second; the ratio to it says how much of the possible
throughput evaluate() reaches (store writes and home traces included). The same evaluation is
then run again: it must make 0 model calls (the call cache). If ``mlflow`` is importable,
``mlflow.genai.evaluate`` runs equivalent custom scorers against the same endpoint and the two
throughputs are compared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import tracejudge
from common import Endpoint, write_result
from tracejudge.models import reset_models
from tracejudge.scorers import RelevanceToQuery, Safety


def rows(n: int) -> list[dict]:
    return [{"inputs": {"question": f"question {i}"}, "outputs": f"answer {i}"} for i in range(n)]


def run_tracejudge(server: Endpoint, n: int, concurrency: int) -> tuple[float, int, float, int]:
    model = f"openai-compatible:/judge?base_url={server.base_url}&max_concurrency={concurrency}"
    scorers = [RelevanceToQuery(model=model), Safety(model=model)]
    data = rows(n)
    before = server.request_count
    start = time.perf_counter()
    result = tracejudge.evaluate(
        data, scorers=scorers, max_concurrency=concurrency, run_name="throughput"
    )
    seconds = time.perf_counter() - start
    calls = server.request_count - before
    assert result.metrics["safety/count"] == n, result.metrics
    start = time.perf_counter()
    again = tracejudge.evaluate(
        data, scorers=scorers, max_concurrency=concurrency, run_name="throughput-again"
    )
    rerun_seconds = time.perf_counter() - start
    rerun_calls = server.request_count - before - calls
    assert again.run.usage["calls"] == rerun_calls
    return seconds, calls, rerun_seconds, rerun_calls


def run_mlflow(server: Endpoint, n: int, concurrency: int) -> float | None:
    try:
        import mlflow
        from mlflow.entities import Feedback as MlflowFeedback
        from mlflow.genai.scorers import scorer as mlflow_scorer
    except ImportError:
        return None
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)

    def ask(kind: str, text: str) -> str:
        reply = client.chat.completions.create(
            model="judge", messages=[{"role": "user", "content": f"{kind}: {text}"}], temperature=0
        )
        return reply.choices[0].message.content or ""

    def judged(kind: str, text: str) -> str:
        """As tracejudge's judges do: a written verdict, then a one-word probe (2 calls)."""
        verdict = ask(kind, text)
        ask(f"{kind} (one word)", text)
        return "yes" if "yes" in verdict else "no"

    @mlflow_scorer
    def relevance(inputs, outputs) -> MlflowFeedback:
        return MlflowFeedback(value=judged("relevance", f"{inputs} {outputs}"))

    @mlflow_scorer
    def safety(outputs) -> MlflowFeedback:
        return MlflowFeedback(value=judged("safety", str(outputs)))

    os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(concurrency)
    # MLflow's SQL store pools 5 + 10 connections by default: 32 workers would wait 30 s timeouts.
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] = str(concurrency + 8)
    os.environ["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] = "8"
    os.environ["MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS"] = "2"
    folder = tempfile.mkdtemp(prefix="mlflow-bench-")
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment(  # artifacts in the temporary folder too, not ./mlruns
        experiment_id=mlflow.create_experiment(
            "throughput", artifact_location=f"{folder}/artifacts"
        )
    )
    data = [{"inputs": r["inputs"], "outputs": r["outputs"] + " mlflow"} for r in rows(n)]
    start = time.perf_counter()
    mlflow.genai.evaluate(data=data, scorers=[relevance, safety])
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument(
        "--delay", type=float, default=0.2, help="seconds the endpoint takes per call"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("TRACEJUDGE_PROGRESS", "0")
    folder = Path(tempfile.mkdtemp(prefix="tj-throughput-"))
    tracejudge.set_tracking_uri(f"sqlite:///{folder / 'throughput.db'}")
    reset_models()
    with Endpoint(args.delay) as server:
        seconds, calls, rerun_seconds, rerun_calls = run_tracejudge(
            server, args.n, args.concurrency
        )
        mlflow_seconds = run_mlflow(server, args.n, args.concurrency)
    rate = args.n / seconds
    calls_per_row = calls / args.n
    bound = args.concurrency / (args.delay * calls_per_row)
    lines = [
        f"# evaluate() throughput: {args.n} rows x 2 LLM scorers, endpoint delay {args.delay * 1000:.0f} ms, "
        f"concurrency {args.concurrency}",
        "",
        "| | value |",
        "|---|---|",
        f"| model calls per row k | {calls_per_row:.2f} (the MLflow scorers below make as many) |",
        f"| bound C / (delay x k) | {bound:.1f} rows/s |",
        f"| tracejudge.evaluate | {rate:.1f} rows/s ({seconds:.1f} s, {calls} model calls) |",
        f"| ratio to the bound | **{rate / bound:.2f}** |",
        f"| second run (same rows) | {rerun_calls} model calls, {args.n / rerun_seconds:.0f} rows/s |",
    ]
    if mlflow_seconds is None:
        lines.append("| mlflow.genai.evaluate | not run (mlflow is not importable here) |")
    else:
        mlflow_rate = args.n / mlflow_seconds
        lines += [
            f"| mlflow.genai.evaluate, same endpoint | {mlflow_rate:.1f} rows/s ({mlflow_seconds:.1f} s) |",
            f"| tracejudge / mlflow | **{rate / mlflow_rate:.2f}x** |",
        ]
    print("\n".join(lines))
    write_result("evaluate_throughput.md", lines)
    return 0 if rerun_calls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
