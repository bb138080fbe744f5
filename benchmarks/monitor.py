"""How close does the monitor get to the throughput the judge endpoint allows, and how long does
a new trace wait for its verdict?

    python benchmarks/monitor.py [--n 1000] [--delay 0.2] [--concurrency 8] [--store URI]

The scripted judge endpoint (``python -m tracejudge.testing``, its own process) answers every
call after a fixed delay. One built-in LLM scorer (``Safety``: a written verdict and a
probability probe, k = 2 calls per trace, one after the other) is registered and started at
sample rate 1.0; the monitor scores C traces at once and the judge model allows C calls at once.

- Throughput: N traces already in the store; passes of ``Monitor.run_once`` until none is left.
  The bound is C / (delay x k) traces per second; the ratio to it says how much the monitor's own
  work (candidates, claims, trace reads, verdict writes, the watermark) and the client's costs.
  A second monitor afterwards must make no model call (nothing is scored twice).
- Lag: a producer logs traces one by one at half the bound while ``Monitor.run_forever`` runs
  (poll 1 s, settle 0); lag is verdict time minus the time the trace was logged, p50 and p99.
  In production the settle delay (``--settle-s``, default 30 s) adds to it, by design.

The no-double/no-gap property under two monitor processes, one killed with SIGKILL, is checked
in the test suite (tests/test_monitoring.py), on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import Endpoint, write_result
from tracejudge import set_tracking_uri
from tracejudge.entities import Feedback
from tracejudge.models import reset_models
from tracejudge.monitoring import Monitor, MonitorOptions
from tracejudge.scorers import Safety
from tracejudge.store import get_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from factories import make_trace


def _log(experiment_id: str, n: int, start_ms: int) -> list[str]:
    traces = [
        make_trace(experiment_id, timestamp_ms=start_ms + i, outputs=f"answer {i}")
        for i in range(n)
    ]
    for i in range(0, n, 500):
        get_store().log_traces(traces[i : i + 500])
    return [t.info.trace_id for t in traces]


def _verdict_times(trace_ids: list[str], name: str) -> dict[str, int]:
    """When each trace got its verdict (ms), for those that have one."""
    found: dict[str, int] = {}
    for i in range(0, len(trace_ids), 1000):
        for trace in get_store().get_traces(trace_ids[i : i + 1000], include_spans=False):
            for a in trace.info.assessments:
                if isinstance(a, Feedback) and a.name == name:
                    found[trace.info.trace_id] = a.create_time_ms
    return found


def throughput(endpoint: Endpoint, experiment: str, n: int, options: MonitorOptions) -> dict:
    eid = get_store().get_or_create_experiment(experiment).experiment_id
    ids = _log(eid, n, int(time.time() * 1000) - 3_600_000)
    before = endpoint.request_count
    monitor = Monitor(get_store(), [eid], options)
    passes = 0
    started = time.perf_counter()
    while True:
        report = monitor.run_once()
        passes += 1
        if report.scorers[0].read == 0:
            break
    seconds = time.perf_counter() - started
    calls = endpoint.request_count - before
    again = Monitor(get_store(), [eid], options).run_once().scorers[0]
    verdicts = _verdict_times(ids, "safety")
    return {
        "seconds": seconds,
        "calls": calls,
        "passes": passes,
        "verdicts": len(verdicts),
        "again_calls": endpoint.request_count - before - calls,
        "again_scored": again.scored,
    }


def lag(experiment: str, rate: float, duration_s: float, options: MonitorOptions) -> dict:
    eid = get_store().get_or_create_experiment(experiment).experiment_id
    arrived: dict[str, int] = {}
    stop = threading.Event()
    monitor = Monitor(get_store(), [eid], options)
    runner = threading.Thread(target=monitor.run_forever, kwargs={"poll_s": 1.0, "stop": stop})
    runner.start()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < duration_s:
        due = started + sent / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        now_ms = int(time.time() * 1000)
        [trace_id] = _log(eid, 1, now_ms)
        arrived[trace_id] = now_ms
        sent += 1
    deadline = time.monotonic() + 120
    verdicts: dict[str, int] = {}
    while time.monotonic() < deadline:
        verdicts = _verdict_times(list(arrived), "safety")
        if len(verdicts) == len(arrived):
            break
        time.sleep(0.5)
    stop.set()
    runner.join(timeout=120)
    lags = sorted((verdicts[t] - arrived[t]) / 1000 for t in verdicts)
    q = statistics.quantiles(lags, n=100) if len(lags) >= 2 else lags * 99
    return {
        "traces": sent,
        "rate": sent / duration_s,
        "scored": len(lags),
        "p50": statistics.median(lags) if lags else float("nan"),
        "p99": q[98] if lags else float("nan"),
        "max": max(lags) if lags else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per judge call")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lag-s", type=float, default=30.0, help="how long traces arrive")
    parser.add_argument("--store", help="a store URI (default: a new SQLite file)")
    args = parser.parse_args()
    os.environ.setdefault("TRACEJUDGE_PROGRESS", "0")
    store_uri = args.store or f"sqlite:///{Path(tempfile.mkdtemp(prefix='tj-monitor-')) / 'm.db'}"
    set_tracking_uri(store_uri)
    reset_models()
    options = MonitorOptions(settle_s=0, concurrency=args.concurrency)
    run = f"bench-{int(time.time())}"
    with Endpoint(args.delay) as endpoint:
        model = (
            f"openai-compatible:/judge?base_url={endpoint.base_url}"
            f"&max_concurrency={args.concurrency}"
        )
        for suffix in ("backlog", "live"):
            Safety(model=model).register(experiment=f"{run}-{suffix}").start()
        done = throughput(endpoint, f"{run}-backlog", args.n, options)
        calls_per_trace = done["calls"] / args.n
        bound = args.concurrency / (args.delay * calls_per_trace)
        live = lag(f"{run}-live", bound / 2, args.lag_s, options)
    store_kind = store_uri.split(":", 1)[0]
    rate = args.n / done["seconds"]
    lines = [
        f"# Monitor: one LLM scorer, endpoint delay {args.delay * 1000:.0f} ms, "
        f"concurrency {args.concurrency}, store {store_kind}",
        "",
        "`python benchmarks/monitor.py"
        + (f" --store {store_kind}://…" if args.store else "")
        + f" --n {args.n} --delay {args.delay} --concurrency {args.concurrency}`",
        "",
        "| | value |",
        "|---|---|",
        f"| model calls per trace k | {calls_per_trace:.2f} |",
        f"| bound C / (delay x k) | {bound:.1f} traces/s |",
        f"| backlog of {args.n} traces, sample rate 1.0 | {rate:.1f} traces/s "
        f"({done['seconds']:.1f} s, {done['passes']} passes, {done['calls']} model calls, "
        f"{done['verdicts']} verdicts) |",
        f"| ratio to the bound | **{rate / bound:.2f}** |",
        f"| a second monitor on the same traces | {done['again_scored']} scored, "
        f"{done['again_calls']} model calls |",
        f"| live: {live['traces']} traces logged one by one at {live['rate']:.1f}/s "
        f"(half the bound), poll 1 s, settle 0 | {live['scored']} scored |",
        f"| lag from logged to verdict, p50 / p99 / max | **{live['p50']:.2f} s / "
        f"{live['p99']:.2f} s** / {live['max']:.2f} s |",
    ]
    print("\n".join(lines))
    write_result(f"monitor_{store_kind.split('+')[0]}.md", lines)
    ok = done["verdicts"] == args.n and done["again_calls"] == 0
    return 0 if ok and live["scored"] == live["traces"] else 1


if __name__ == "__main__":
    sys.exit(main())
