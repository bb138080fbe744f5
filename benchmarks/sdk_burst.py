"""One client's workload for ``server_ingest.py --mlflow-python``: traces of N spans made with an
SDK's own tracing API from K threads, sent to a tracking server, timed until flushed.

    python benchmarks/sdk_burst.py tracejudge|mlflow URL TRACES SPANS THREADS

Prints one line: ``<seconds> <traces acknowledged>``. Run by each side's own interpreter (MLflow
lives in its own virtual environment), so both SDKs do the same work through their servers.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time


def _burst(sdk_name: str, url: str, traces: int, spans: int, threads: int) -> tuple[float, int]:
    """The workload through either SDK: both spell this part of their API the same way."""
    sdk = importlib.import_module(sdk_name)
    sdk.set_tracking_uri(url)
    sdk.set_experiment("bench")

    def work(n: int) -> None:
        for i in range(n):
            with sdk.start_span("answer") as root:
                root.set_inputs({"question": f"q{i}"})
                for k in range(spans - 1):
                    with sdk.start_span(f"step{k}", span_type="LLM") as child:
                        child.set_inputs({"messages": [{"role": "user", "content": f"q{i}"}]})
                        child.set_outputs({"text": "x" * 200})
                root.set_outputs(f"a{i}")

    start = time.perf_counter()
    _run(work, traces, threads)
    if sdk_name == "tracejudge":
        sdk.flush(timeout=600)
    else:  # MLflow's asynchronous trace logging, where it is on
        flush = getattr(sdk, "flush_trace_async_logging", None)
        if flush is not None:
            flush(terminate=True)
    elapsed = time.perf_counter() - start
    found = sdk.search_traces(max_results=traces + 10, return_type="list")
    return elapsed, len(found)


def _run(work, traces: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    share = [traces // threads + (1 if t < traces % threads else 0) for t in range(threads)]
    workers = [threading.Thread(target=work, args=(n,)) for n in share]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    sdk, url, n, spans, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    if sdk not in ("tracejudge", "mlflow"):
        raise SystemExit(f"unknown SDK {sdk!r}: tracejudge or mlflow")
    seconds, acknowledged = _burst(sdk, url, n, spans, threads)
    print(f"{seconds:.3f} {acknowledged}")
