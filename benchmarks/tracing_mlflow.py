"""MLflow's side of ``tracing_overhead.py``: the same traces under ``@mlflow.trace``, written to
an MLflow SQLite store by MLflow's own asynchronous trace logging.

    python benchmarks/tracing_mlflow.py N CHILDREN ROUNDS FOLDER

Run by ``tracing_overhead.py`` in a process of its own (MLflow installs its own OpenTelemetry
tracer provider); prints one JSON line: the caller's CPU time per span (best round), the end
to end rate (best round: traced calls plus the wait until MLflow has written them) and how
many traces MLflow holds at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(n: int, children: int, rounds: int, folder: str) -> None:
    # MLflow's queue drops traces beyond its size; make it hold every round
    os.environ.setdefault("MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE", str(n * rounds * 2))
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment("bench")

    def work(x: int) -> int:
        return x * 2

    @mlflow.trace
    def traced_child(x: int) -> int:
        return work(x)

    @mlflow.trace
    def traced_root(i: int, children: int) -> int:
        for j in range(children):
            traced_child(j)
        return work(i)

    def run(count: int) -> None:
        for i in range(count):
            traced_root(i, children)

    run(10)  # warm up: create the store, start the logging threads
    mlflow.flush_trace_async_logging()
    spans = n * (children + 1)
    caller, end_to_end = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.thread_time()
        run(n)
        caller.append(time.thread_time() - cpu)
        mlflow.flush_trace_async_logging()
        end_to_end.append(time.perf_counter() - wall)
    written = len(mlflow.search_traces(max_results=n * rounds + 100, return_type="list"))
    print(
        json.dumps(
            {
                "mlflow": mlflow.__version__,
                "caller_us_per_span": min(caller) / spans * 1e6,
                "spans_per_s": spans / min(end_to_end),
                "traces_written": written,
                "traces_sent": n * rounds + 10,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
