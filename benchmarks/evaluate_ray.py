"""How does evaluate() scale from one process to Ray workers?

    python benchmarks/evaluate_ray.py [--n 2000] [--delay 0.2] [--concurrency 16] [--store URI]

N stored traces are scored with one built-in LLM scorer (``Safety``: a written verdict, then a
one-word probability probe, k = 2 calls per trace, one after the other) against the scripted
judge endpoint (``python -m tracejudge.testing``, its own process), which answers every call
after a fixed delay. Each worker scores C traces at once, so the bound for W workers is
W x C / (delay x k) traces per second; the in-process executor is W = 1 in this process.
The call cache is off (every run calls the endpoint). Runs, in one Ray session:

- in-process (``executor="local"``, the batched driver without Ray) and Ray with 1, 2 and 4
  workers (Ray reserves 0.25 CPU per actor: the work is waiting on HTTP);
- the overhead per trace with a trivial scorer (no model call), the fixed cost taken out: what
  the batches, the store reads and the verdict writes cost on each executor;
- the fixed cost of a run on Ray (actors started, scorers rebuilt): a run over one trace.

The default store is a fresh SQLite file (one machine); ``--store postgresql+psycopg://...``
measures the store a multi-node cluster would share.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import ray

import tracejudge
from common import Endpoint, write_result
from tracejudge import RayExecutor, TraceQuery
from tracejudge.models import reset_models
from tracejudge.scorers import Safety
from tracejudge.store import get_store
from tracejudge.testing.monitor_scorers import answered

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from factories import make_trace


def load(experiment: str, n: int) -> None:
    eid = get_store().get_or_create_experiment(experiment).experiment_id
    traces = [
        make_trace(eid, timestamp_ms=1_700_000_000_000 + i, outputs=f"answer {i}") for i in range(n)
    ]
    for i in range(0, n, 500):
        get_store().log_traces(traces[i : i + 500])


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def timed(experiment: str, scorers: list, executor, concurrency: int) -> float:
    start = time.perf_counter()
    result = tracejudge.evaluate(
        TraceQuery(experiment),
        scorers,
        executor=executor,
        max_concurrency=concurrency,
        batch_size=32,
    )
    seconds = time.perf_counter() - start
    assert result.run.status.value == "FINISHED", result.run.failure
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per endpoint call")
    parser.add_argument("--concurrency", type=int, default=16, help="traces at once per worker")
    parser.add_argument("--trivial-n", type=int, default=5000)
    parser.add_argument("--store", default=None, help="tracking URI (default: a new SQLite file)")
    args = parser.parse_args()
    os.environ["TRACEJUDGE_PROGRESS"] = "0"
    os.environ["TRACEJUDGE_CALL_CACHE"] = "0"  # forwarded to the actors
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private cluster of this run
    store = args.store or f"sqlite:///{Path(tempfile.mkdtemp(prefix='tj-ray-')) / 'ray.db'}"
    tracejudge.set_tracking_uri(store)
    reset_models()
    load("llm", args.n)
    load("trivial", args.trivial_n)
    load("one", 1)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    c = args.concurrency
    # (label, W, executor factory, traces at once per process): the bound is W x C either way
    executors = [
        ("in-process", 1, lambda: "local", c),
        (f"in-process, concurrency 4 x {c}", 4, lambda: "local", 4 * c),
    ] + [
        (
            f"Ray, {w} worker{'s' * (w > 1)}",
            w,
            lambda w=w: RayExecutor(workers=w, cpus_per_worker=0.25),
            c,
        )
        for w in (1, 2, 4)
    ]
    rows = []
    with Endpoint(args.delay) as endpoint:
        for label, workers, make, concurrency in executors:
            model = (
                f"openai-compatible:/judge?base_url={endpoint.base_url}"
                f"&max_concurrency={concurrency}"
            )
            before = endpoint.request_count
            busy0, total0 = cpu_times()
            seconds = timed("llm", [Safety(model=model)], make(), concurrency)
            busy1, total1 = cpu_times()
            calls = endpoint.request_count - before
            k = calls / args.n  # 2.00 for Safety
            bound = workers * args.concurrency / (args.delay * k)
            trivial_s = timed("trivial", [answered], make(), concurrency)
            fixed_s = timed("one", [answered], make(), concurrency)
            steady = args.n / max(seconds - fixed_s, 1e-9)
            rows.append(
                f"| {label} | {args.n / seconds:.1f} | {steady:.1f} | {bound:.1f} "
                f"| **{steady / bound:.2f}** | {(busy1 - busy0) / (total1 - total0):.0%} "
                f"| {(trivial_s - fixed_s) / args.trivial_n * 1e6:.0f} | {fixed_s:.2f} |"
            )
            print(rows[-1], flush=True)
    ray.shutdown()
    backend = "PostgreSQL" if store.startswith("postgresql") else "SQLite"
    lines = [
        f"# evaluate() on Ray: {args.n} traces x Safety (k calls each), endpoint delay "
        f"{args.delay * 1000:.0f} ms, {args.concurrency} traces at once per worker, {backend} store",
        "",
        f"`python benchmarks/evaluate_ray.py --n {args.n} --delay {args.delay} "
        f"--concurrency {args.concurrency}{' --store <postgresql>' if args.store else ''}` "
        f"on {os.cpu_count()} cores, one Ray node (`ray.init(num_cpus=2)`), the judge endpoint "
        "and the store on the same machine.",
        "",
        "| executor | traces/s | traces/s, fixed cost out | bound W x C / (delay x k) | ratio "
        f"(fixed cost out) | CPU busy (all cores) | trivial scorer, us/trace ({args.trivial_n} "
        "traces, fixed cost out) | fixed cost: a run over 1 trace, s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    slug = "postgresql" if backend == "PostgreSQL" else "sqlite"
    path = write_result(f"evaluate_ray_{slug}.md", lines)
    print("\n".join(lines))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
