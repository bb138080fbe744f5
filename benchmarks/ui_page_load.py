"""Web UI page time on a large store, against the REST API's JSON answer for the same traces.

    python benchmarks/ui_page_load.py --uri postgresql+psycopg://postgres@127.0.0.1:5432/tj_bench --n 1000000

Fills the store with N traces like ``search.py``'s (tags env/user, a trustworthiness feedback
on 80 %, two spans each) unless it already holds them — on PostgreSQL with set-based SQL
(``generate_series``: a million traces in minutes instead of hours through ``log_traces``),
elsewhere through the store — then requests each page ``--repeat`` times through
the server's app in-process and prints p50/p95 of the server time (the ``Server-Timing`` header
the UI sets: the store calls and the template, no network). The baseline is the REST API's
``/api/v1/traces/search`` for the same experiment, filter, order and page size, timed in the same
run: the UI's extra cost is rendering, columns and assessments. Target: the traces page under
300 ms at 1M traces on PostgreSQL.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from sqlalchemy import text

from common import write_result
from search import populate
from tracejudge.server.app import create_app
from tracejudge.store import SqlTraceStore

PAGE = 50
TIMING = re.compile(r"page;dur=([0-9.]+)")


BULK_SQL = [
    """INSERT INTO traces (trace_id, experiment_id, timestamp_ms, execution_time_ms, status, name,
         request_preview, response_preview, request, response)
       SELECT 'tr-' || md5(i::text), :experiment, 1700000000000 + i * 1000, 50 + (i * 37) % 900,
         CASE WHEN i % 50 = 0 THEN 'ERROR' ELSE 'OK' END, 'answer', 'q' || i, 'a' || i,
         '{"question": "q' || i || '"}', '"a' || i || '"'
       FROM generate_series(0::bigint, :n - 1) AS i""",
    """INSERT INTO trace_tags (trace_id, key, value)
       SELECT 'tr-' || md5(i::text), 'env', CASE WHEN i % 3 = 0 THEN 'staging' ELSE 'prod' END
       FROM generate_series(0::bigint, :n - 1) AS i
       UNION ALL
       SELECT 'tr-' || md5(i::text), 'user', 'u' || (i * 7919) % 1000
       FROM generate_series(0::bigint, :n - 1) AS i""",
    """INSERT INTO assessments (assessment_id, trace_id, name, kind, value_json, string_value,
         numeric_value, source_type, source_id, valid, latest, create_time_ms, last_update_time_ms)
       SELECT 'a-' || md5('a' || i), 'tr-' || md5(i::text), 'trustworthiness', 'feedback',
         v::text, v::text, v, 'CODE', 'default', true, true, 1700000000000 + i * 1000,
         1700000000000 + i * 1000
       FROM (SELECT i, round(((i * 2654435761) % 10000) / 10000.0, 4)::float AS v
             FROM generate_series(0::bigint, :n - 1) AS i WHERE i % 5 <> 0) AS scored""",
    """INSERT INTO spans (trace_id, span_id, parent_span_id, name, span_type, status,
         start_time_ns, end_time_ns, content)
       SELECT 'tr-' || md5(i::text), lpad(to_hex(k), 16, '0'),
         CASE WHEN k = 0 THEN NULL ELSE lpad('0', 16, '0') END,
         CASE WHEN k = 0 THEN 'answer' ELSE 'step' END,
         CASE WHEN k = 0 THEN 'CHAIN' WHEN i % 2 = 0 THEN 'RETRIEVER' ELSE 'LLM' END, 'OK',
         (1700000000000 + i * 1000) * 1000000, (1700000000000 + i * 1000 + 50) * 1000000,
         json_build_object('trace_id', 'tr-' || md5(i::text), 'span_id', lpad(to_hex(k), 16, '0'),
           'parent_id', CASE WHEN k = 0 THEN NULL ELSE lpad('0', 16, '0') END,
           'name', CASE WHEN k = 0 THEN 'answer' ELSE 'step' END,
           'span_type', CASE WHEN k = 0 THEN 'CHAIN' WHEN i % 2 = 0 THEN 'RETRIEVER' ELSE 'LLM' END,
           'start_time_ns', (1700000000000 + i * 1000) * 1000000,
           'end_time_ns', (1700000000000 + i * 1000 + 50) * 1000000,
           'status', json_build_object('status_code', 'OK', 'description', ''),
           'inputs', json_build_object('question', 'q' || i), 'outputs', 'a' || i,
           'attributes', json_build_object(), 'events', json_build_array())::text
       FROM generate_series(0::bigint, :n - 1) AS i, (VALUES (0), (1)) AS kinds(k)""",
    "ANALYZE",
]


def fill(store: SqlTraceStore, n: int) -> str:
    if store.engine.dialect.name != "postgresql":
        return populate(store, n)
    experiment = store.get_or_create_experiment("ui-benchmark").experiment_id
    have = store.experiment_activity().get(experiment, {}).get("trace_count") or 0
    if have >= n:
        print(f"store already holds {have:,} traces", file=sys.stderr)
        return experiment
    if have:
        raise SystemExit(
            f"experiment ui-benchmark holds {have:,} < {n:,} traces: use a new database"
        )
    started = time.perf_counter()
    with store.engine.begin() as conn:
        for statement in BULK_SQL[:-1]:
            conn.execute(text(statement), {"experiment": int(experiment), "n": n})
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(BULK_SQL[-1]))
    print(f"wrote {n:,} traces in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return experiment


def timed(request, repeat: int) -> tuple[float, float, float]:
    """p50 / p95 of the Server-Timing duration (ms) and p50 of the whole in-process request."""
    server, whole = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        response = request()
        whole.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{response.status_code}: {response.text[:300]}")
        match = TIMING.search(response.headers.get("server-timing", ""))
        server.append(float(match.group(1)) if match else whole[-1])
    server.sort()
    return (
        statistics.median(server),
        server[min(len(server) - 1, int(len(server) * 0.95))],
        statistics.median(whole),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--uri", default=None, help="store URI (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    uri = args.uri or f"sqlite:///{Path(tempfile.mkdtemp(prefix='tj-ui-')) / 'ui.db'}"
    store = SqlTraceStore(uri)
    experiment = fill(store, args.n)
    client = TestClient(create_app(store))
    some_trace = store.search_traces([experiment], None, None, 1, include_spans=False)[0]

    views = [
        ("newest first", "", "timestamp_ms DESC"),
        ("tag filter", "tag.env = 'prod'", "timestamp_ms DESC"),
        ("OR filter", "tag.user = 'u7' OR feedback.trustworthiness < 0.05", "timestamp_ms DESC"),
        ("least trustworthy first", "", "feedback.trustworthiness ASC"),
    ]
    rows = []
    for label, flt, order in views:
        query = urlencode({"filter": flt, "order": order, "size": PAGE})
        ui = timed(lambda q=query: client.get(f"/experiments/{experiment}/traces?{q}"), args.repeat)
        body = {
            "experiment_ids": [experiment],
            "filter_string": flt or None,
            "order_by": [order],
            "max_results": PAGE,
            "include_spans": False,
        }
        api = timed(lambda b=body: client.post("/api/v1/traces/search", json=b), args.repeat)
        rows.append(
            f"| traces: {label} | `{flt or '-'}` | {order} | {ui[0]:.1f} / {ui[1]:.1f} "
            f"| {ui[2]:.1f} | {api[2]:.1f} | {ui[2] / api[2]:.2f}x |"
        )
        print(rows[-1], file=sys.stderr)
    others = [
        ("experiments (trace counts)", "/experiments"),
        ("one trace with its spans", f"/traces/{some_trace.info.trace_id}"),
    ]
    for label, path in others:
        ui = timed(lambda p=path: client.get(p), args.repeat)
        rows.append(f"| {label} | | | {ui[0]:.1f} / {ui[1]:.1f} | {ui[2]:.1f} | | |")
    backend = store.engine.dialect.name
    lines = [
        f"# Web UI page time on {backend}, {args.n:,} traces, pages of {PAGE} "
        f"(ms over {args.repeat} requests)",
        "",
        "Server time: the UI's Server-Timing header (store calls + template). Baseline: the REST "
        "API's JSON search for the same page; the ratio compares whole in-process requests "
        "(p50), both timed in this run.",
        "",
        "| page | filter | order | UI server p50 / p95 | UI request p50 | API search p50 | UI / API |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines))
    path = write_result(f"ui_page_load_{backend}_{args.n}.md", lines)
    print(f"\nwritten to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
