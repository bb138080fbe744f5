"""Trace search latency on a large store: filtered, ordered first pages and the 100th page.

    python benchmarks/search.py [--n 100000] [--uri sqlite:///path.db] [--repeat 30]

Generates N traces (tags env/user, a trustworthiness feedback on 80 % of them, one or two
spans each) unless the store already holds them, then times each query ``--repeat`` times and
prints p50/p95 in milliseconds. The 100th page is reached by following page tokens (keyset
pagination), and only the request for page 100 is timed. Target: p50 < 50 ms at 1M traces
on SQLite for a filtered, ordered first page.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tracejudge.entities import (
    Feedback,
    Span,
    SpanStatus,
    SpanStatusCode,
    Trace,
    TraceData,
    TraceInfo,
)
from tracejudge.store import SqlTraceStore

BATCH = 2000
PAGE = 100

QUERIES = [
    ("tag filter, newest first", "tag.env = 'prod'", ["timestamp DESC"]),
    (
        "tag AND feedback < 0.5, newest first",
        "tag.env = 'prod' AND feedback.trustworthiness < 0.5",
        ["timestamp DESC"],
    ),
    (
        "OR with parentheses, newest first",
        "(tag.user = 'u7' OR feedback.trustworthiness < 0.05) AND span.type = 'RETRIEVER'",
        ["timestamp DESC"],
    ),
    ("time range, slowest first", "timestamp >= {mid}", ["execution_time DESC"]),
    (
        "feedback < 0.5, least trustworthy first",
        "feedback.trustworthiness < 0.5",
        ["feedback.trustworthiness ASC"],
    ),
]


def make(i: int, experiment_id: str, rng: random.Random) -> Trace:
    tid = f"tr-{rng.getrandbits(128):032x}"
    start_ms = 1_700_000_000_000 + i * 1000
    span_type = "RETRIEVER" if i % 3 == 0 else "LLM"
    root = Span(
        tid,
        f"{i:016x}",
        None,
        "answer",
        "CHAIN",
        start_ms * 1_000_000,
        (start_ms + 50) * 1_000_000,
        SpanStatus(SpanStatusCode.OK),
        {"question": f"q{i}"},
        f"a{i}",
    )
    child = Span(
        tid,
        f"{i + 1:016x}",
        root.span_id,
        "step",
        span_type,
        start_ms * 1_000_000,
        (start_ms + 20) * 1_000_000,
        SpanStatus(SpanStatusCode.OK),
        {"i": i},
        {"o": i},
    )
    info = TraceInfo(
        tid,
        experiment_id,
        start_ms,
        rng.randint(10, 5000),
        name="answer",
        request_preview=f"q{i}",
        response_preview=f"a{i}",
        tags={"env": "prod" if rng.random() < 0.5 else "dev", "user": f"u{rng.randint(0, 999)}"},
    )
    if rng.random() < 0.8:
        info.assessments.append(Feedback("trustworthiness", round(rng.random(), 4), trace_id=tid))
    return Trace(info, TraceData([root, child], f'{{"question": "q{i}"}}', f'"a{i}"'))


def populate(store: SqlTraceStore, n: int) -> str:
    experiment = store.get_or_create_experiment("search-benchmark")
    have = len(store.search_traces([experiment.experiment_id], None, None, 1, include_spans=False))
    if have:
        existing = store.search_traces(
            [experiment.experiment_id], None, ["timestamp ASC"], 1, include_spans=False
        )
        last = store.search_traces(
            [experiment.experiment_id], None, ["timestamp DESC"], 1, include_spans=False
        )
        count = (last[0].info.request_time - existing[0].info.request_time) // 1000 + 1
        if count >= n:
            print(f"store already holds {count:,} traces", file=sys.stderr)
            return experiment.experiment_id
    rng = random.Random(7)
    start = time.perf_counter()
    for lo in range(0, n, BATCH):
        store.log_traces(
            [make(i, experiment.experiment_id, rng) for i in range(lo, min(n, lo + BATCH))]
        )
        if lo and lo % (BATCH * 50) == 0:
            print(
                f"  {lo:,} traces written ({lo / (time.perf_counter() - start):,.0f}/s)",
                file=sys.stderr,
            )
    print(f"wrote {n:,} traces in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return experiment.experiment_id


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--uri", default=None, help="store URI (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    uri = args.uri or f"sqlite:///{Path(tempfile.mkdtemp(prefix='tj-search-')) / 'search.db'}"
    store = SqlTraceStore(uri)
    experiment_id = populate(store, args.n)
    mid = 1_700_000_000_000 + (args.n // 2) * 1000

    rows = []
    for label, flt, order in QUERIES:
        flt = flt.format(mid=mid)

        def first_page(flt=flt, order=order):
            return store.search_traces([experiment_id], flt, order, PAGE, include_spans=False)

        token = None
        for _ in range(99):
            page = store.search_traces(
                [experiment_id], flt, order, PAGE, token, include_spans=False
            )
            token = page.token
            if token is None:
                break

        def hundredth(flt=flt, order=order, token=token):
            return store.search_traces(
                [experiment_id], flt, order, PAGE, token, include_spans=False
            )

        p50, p95 = timed(first_page, args.repeat)
        if token is not None:
            q50, q95 = timed(hundredth, args.repeat)
            hundredth_cell = f"{q50:.1f} / {q95:.1f}"
        else:
            hundredth_cell = "(fewer than 100 pages)"
        rows.append(
            f"| {label} | `{flt}` | {', '.join(order)} | {p50:.1f} / {p95:.1f} | {hundredth_cell} |"
        )

    with_spans_p50, with_spans_p95 = timed(
        lambda: store.search_traces(
            [experiment_id], "tag.env = 'prod'", None, PAGE, include_spans=True
        ),
        args.repeat,
    )
    backend = store.engine.dialect.name
    lines = [
        f"# Trace search on {backend}, {args.n:,} traces, pages of {PAGE} (p50 / p95 ms over {args.repeat} runs)",
        "",
        "| query | filter | order | first page | page 100 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"- first page of `tag.env = 'prod'` with spans loaded: {with_spans_p50:.1f} / {with_spans_p95:.1f} ms",
    ]
    print("\n".join(lines))
    out = Path(__file__).parent / "results" / f"search_{backend}_{args.n}.md"
    out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
