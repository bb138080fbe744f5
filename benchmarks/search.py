"""Trace search at scale: filtered, ordered first pages and the 100th page, word search,
dashboard aggregates, the query plans behind them, and the ingest rate empty vs full.

    python benchmarks/search.py [--n 1000000] [--uri sqlite:///path.db | postgresql+psycopg://…]
                                [--repeat 15]

Generates N traces unless the store already holds them: a question and an answer drawn from a
Zipf-distributed vocabulary (so word search meets common and rare words), one or two spans
carrying a retrieved passage, tags env/user, a trustworthiness feedback on 80 % of them. The
bulk goes in with multi-row inserts (SQLite) or ``COPY`` (PostgreSQL), like a restore would;
before and after it, ``log_traces`` (the API's own write path) is timed on 4,000 traces, so
the figures show whether writes slow down as the store grows (at the end in three rounds that
alternate the SDK's time-ordered trace ids and random ones, as OTLP traces from other SDKs
carry).
The word-search indexes are then compacted as ``tracejudge gc`` leaves them (SQLite). Every query is timed
``--repeat`` times (p50 / p95 ms); page 100 is reached by following page tokens and only its
request is timed. The plan of each first page (``EXPLAIN``) is written out, so that a
regression in a plan is visible. A query the store's statement timeout stops
(``TRACEJUDGE_STATEMENT_TIMEOUT_S``, PostgreSQL) is reported as stopped and the run goes on.
Targets: p50 < 50 ms and p95 < 150 ms for pages, < 100 ms
for word search, < 200 ms for aggregates, < 100 ms for a 1,000-row list without spans.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, insert, text

import pg_bulk
from tracejudge.entities import (
    Feedback,
    Span,
    SpanStatus,
    SpanStatusCode,
    Trace,
    TraceData,
    TraceInfo,
)
from tracejudge.errors import StoreError
from tracejudge.query import parse_filter
from tracejudge.store import SqlTraceStore, hourly_rollups
from tracejudge.store import schema as s
from tracejudge.store.rows import span_row

BULK = 5_000
LOAD_WORKERS = 2  # processes generating rows while the main one writes them
DEFER_INDEXES_FROM = 500_000  # traces loaded at once from which indexes are built afterwards
PAGE = 100
T0 = 1_700_000_000_000
STEP_MS = 1000  # one trace a second
DAY_MS = 86_400_000
INGEST_TRACES = 4000
INGEST_ROUNDS = 3

# a vocabulary of pronounceable made-up words plus the words the queries look for
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
_MADE_UP = [a + b + c for a in _SYLLABLES[:30] for b in _SYLLABLES[20:50] for c in ("", "n", "r")]
VOCAB = ["refund", "policy", "invoice", "shipping", "password", "cancel", "order", "account"]
VOCAB += _MADE_UP[:6000]
NAMES = [f"{a.title()}{b}" for a in _SYLLABLES for b in _SYLLABLES[:40]][:2000]
RARE_NAME = NAMES[-1]  # drawn with the lowest probability


def _zipf_weights(n: int) -> list[float]:
    return [1 / (rank + 1) for rank in range(n)]


class Generator:
    """Deterministic fake traffic: trace i at T0 + i seconds.

    Its ids are made as the SDK makes them: the start millisecond, then random bits
    (``tracejudge.entities.ids``). ``random_ids`` gives uuid4-like ids instead, as traces from
    other OpenTelemetry SDKs arrive over OTLP.
    """

    def __init__(self, seed: int = 7, random_ids: bool = False) -> None:
        self.rng = random.Random(seed)
        self.random_ids = random_ids
        # cumulative weights, computed once: ``choices`` would add up 6,000 weights per call
        # (the same draws either way)
        self.vocab_cum = list(itertools.accumulate(_zipf_weights(len(VOCAB))))
        self.name_cum = list(itertools.accumulate(_zipf_weights(len(NAMES))))

    def words(self, k: int) -> str:
        return " ".join(self.rng.choices(VOCAB, cum_weights=self.vocab_cum, k=k))

    def _id(self, ms: int) -> str:
        if self.random_ids:
            return f"{self.rng.getrandbits(128):032x}"
        return f"{ms:012x}{self.rng.getrandbits(80):020x}"

    def rows(self, i: int, experiment_id: int) -> dict[str, list[dict[str, Any]]]:
        rng = self.rng
        start_ms = T0 + i * STEP_MS
        tid = f"tr-{self._id(start_ms)}"
        name = rng.choices(NAMES, cum_weights=self.name_cum)[0]
        question = f"{name} asks: {self.words(8)}?"
        answer = f"{self.words(30)}."
        passage = f"{self.words(40)}."
        status = "ERROR" if rng.random() < 0.03 else "OK"
        request, response = json.dumps({"question": question}), json.dumps(answer)
        trace = {
            "trace_id": tid,
            "experiment_id": experiment_id,
            "timestamp_ms": start_ms,
            "execution_time_ms": rng.randint(10, 5000),
            "status": status,
            "name": "answer",
            "client_request_id": None,
            "request_preview": request[:1000],
            "response_preview": response[:1000],
            "request": request,
            "response": response,
        }
        span_type = "RETRIEVER" if i % 3 == 0 else "LLM"
        spans = [
            _span_row(tid, f"{i:016x}", None, "answer", "CHAIN", start_ms, 50, request, response),
            _span_row(
                tid,
                f"{i + 1:016x}",
                f"{i:016x}",
                "step",
                span_type,
                start_ms,
                20,
                request,
                json.dumps({"documents": [passage]}),
            ),
        ]
        tags = [
            {"trace_id": tid, "key": "env", "value": "prod" if rng.random() < 0.5 else "dev"},
            {"trace_id": tid, "key": "user", "value": f"u{rng.randint(0, 999)}"},
        ]
        assessments = []
        if rng.random() < 0.8:
            value = round(rng.random(), 4)
            assessments.append(
                {
                    "assessment_id": f"a-{self._id(start_ms + 100)}",
                    "trace_id": tid,
                    "span_id": None,
                    "name": "trustworthiness",
                    "kind": "feedback",
                    "value_json": json.dumps(value),
                    "string_value": json.dumps(value),
                    "numeric_value": value,
                    "rationale": None,
                    "source_type": "LLM_JUDGE",
                    "source_id": "bench",
                    "run_id": None,
                    "error_json": None,
                    "metadata_json": None,
                    "valid": True,
                    "latest": True,
                    "overrides": None,
                    "create_time_ms": start_ms + 100,
                    "last_update_time_ms": start_ms + 100,
                }
            )
        return {"traces": [trace], "spans": spans, "trace_tags": tags, "assessments": assessments}

    def trace(self, i: int, experiment_id: str) -> Trace:
        """The same kind of trace as an entity, for timing ``log_traces``."""
        rows = self.rows(i, int(experiment_id))
        t = rows["traces"][0]
        spans = [
            Span(
                t["trace_id"],
                r["span_id"],
                r["parent_span_id"],
                r["name"],
                r["span_type"],
                r["start_time_ns"],
                r["end_time_ns"],
                SpanStatus(SpanStatusCode.OK),
                json.loads(t["request"]),
                json.loads(t["response"]),
            )
            for r in rows["spans"]
        ]
        info = TraceInfo(
            t["trace_id"],
            experiment_id,
            t["timestamp_ms"],
            t["execution_time_ms"],
            name="answer",
            request_preview=t["request_preview"],
            response_preview=t["response_preview"],
            tags={r["key"]: r["value"] for r in rows["trace_tags"]},
        )
        for a in rows["assessments"]:
            info.assessments.append(Feedback("trustworthiness", a["numeric_value"]))
        return Trace(info, TraceData(spans, t["request"], t["response"]))


def _span_row(tid, span_id, parent, name, kind, start_ms, dur_ms, inputs, outputs):
    """The row the store itself writes for such a span (its payload in the store's format)."""
    span = Span(
        tid,
        span_id,
        parent,
        name,
        kind,
        start_ms * 1_000_000,
        (start_ms + dur_ms) * 1_000_000,
        SpanStatus(SpanStatusCode.OK),
        json.loads(inputs),
        json.loads(outputs),
    )
    return span_row(span)


TABLE_ORDER = ("traces", "spans", "trace_tags", "assessments")


def _batch(task: tuple[int, int, int, bool, bool]) -> dict[str, Any]:
    """Rows of traces ``lo..hi`` from a generator seeded by ``lo`` (so any batch can be made in
    any process and a load is the same however it is split), as row dicts or, for COPY, as
    ``(columns, text)`` per table."""
    lo, hi, experiment_id, random_ids, as_copy = task
    gen = Generator(seed=lo, random_ids=random_ids)
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLE_ORDER}
    for i in range(lo, hi):
        for table, rows in gen.rows(i, experiment_id).items():
            out[table].extend(rows)
    if not as_copy:
        return out
    copies: dict[str, Any] = {}
    for table, rows in out.items():
        if rows:
            columns = list(rows[0])
            lines = ("\t".join(_copy_text(r[c]) for c in columns) + "\n" for r in rows)
            copies[table] = (columns, "".join(lines))
    return copies


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def bulk_load(store: SqlTraceStore, lo: int, hi: int, experiment_id: int, random_ids: bool) -> None:
    """Traces ``lo..hi`` straight into the tables: COPY on PostgreSQL, multi-row inserts on
    SQLite. Worker processes generate the rows while this one writes them (a bounded number of
    batches ahead).

    On PostgreSQL a large load builds the secondary indexes and foreign keys after the rows,
    as ``pg_restore`` does (``pg_bulk``)."""
    as_copy = store.dialect == "postgresql"
    deferred = as_copy and hi - lo >= DEFER_INDEXES_FROM
    if deferred:
        dropped = pg_bulk.defer(store.engine, TABLE_ORDER)
        print(f"  {dropped} indexes and foreign keys deferred", file=sys.stderr)
    tasks = [
        (start, min(hi, start + BULK), experiment_id, random_ids, as_copy)
        for start in range(lo, hi, BULK)
    ]
    start = time.perf_counter()
    with mp.get_context("fork").Pool(LOAD_WORKERS) as pool:
        ahead: collections.deque = collections.deque()  # (task, its rows being generated)
        written = 0

        def write_oldest() -> None:
            nonlocal written
            task, rows = ahead.popleft()
            _write_batch(store, rows.get())
            written += 1
            if written % 20 == 0 or written == len(tasks):
                rate = (task[1] - lo) / (time.perf_counter() - start)
                print(f"  {task[1]:,} traces loaded ({rate:,.0f}/s)", file=sys.stderr)

        for task in tasks:
            ahead.append((task, pool.apply_async(_batch, (task,))))
            while len(ahead) > 2 * LOAD_WORKERS:
                write_oldest()
        while ahead:
            write_oldest()
    if deferred:
        pg_bulk.restore(store.engine)
    elif as_copy:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def _write_batch(store: SqlTraceStore, batch: dict[str, Any]) -> None:
    with store.engine.begin() as conn:
        for table in TABLE_ORDER:
            if table not in batch or not batch[table]:
                continue
            if store.dialect == "postgresql":
                columns, copy_text = batch[table]
                raw = conn.connection.driver_connection
                copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                    copy.write(copy_text)
            else:
                conn.execute(insert(s.metadata.tables[table]), batch[table])


def ingest_rate(store: SqlTraceStore, gen: Generator, first: int, experiment_id: str) -> float:
    """Traces/s through ``log_traces`` (batches of 500, spans, tags and a feedback each)."""
    count = INGEST_TRACES
    batches = [
        [gen.trace(i, experiment_id) for i in range(lo, lo + 500)]
        for lo in range(first, first + count, 500)
    ]
    start = time.perf_counter()
    for batch in batches:
        store.log_traces(batch)
    return count / (time.perf_counter() - start)


def full_store_ingest(store: SqlTraceStore, n: int, experiment_id: str) -> tuple[str, str]:
    """``log_traces`` into the full store, alternating the SDK's time-ordered ids and random
    ids (OTLP from other SDKs) over ``INGEST_ROUNDS`` rounds: each kind's median (min–max).
    Every run writes new traces (ids from seeds taken from the clock, so no run repeats
    another's) in the hours just after the loaded ones, as new traces are; the open-ended time
    ranges of the queries count them too (24,000 per run, next to the 86,400 of the last
    day)."""
    clock = int(time.time())
    base = n + 3_600
    rates: dict[bool, list[float]] = {False: [], True: []}
    for k in range(INGEST_ROUNDS):
        for random_ids in (False, True):
            first = base + (2 * k + random_ids) * INGEST_TRACES
            gen = Generator(seed=clock + 2 * k + random_ids, random_ids=random_ids)
            rates[random_ids].append(ingest_rate(store, gen, first, experiment_id))

    def summary(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"

    return summary(rates[False]), summary(rates[True])


def stored_count(store: SqlTraceStore, experiment_id: str) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM traces WHERE experiment_id = :e"),
                {"e": int(experiment_id)},
            ).scalar()
        )


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()  # warm caches: the figures are for a store in use, not a cold start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


class PlanCapture:
    """Records the statements a search sends, then shows the database's plan for the ones that
    find the traces (the word-hit counts and the page query, not the detail loads after it)."""

    def __init__(self, store: SqlTraceStore) -> None:
        self.store = store
        self.statements: list[tuple[str, Any]] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        head = statement.lstrip()
        if head.startswith("SELECT traces.") or head.startswith("SELECT count(*) FROM (SELECT 1"):
            self.statements.append((statement, parameters))

    def plan(self, call: Callable[[], Any]) -> str:
        self.statements = []
        event.listen(self.store.engine, "before_cursor_execute", self._record)
        try:
            call()
        finally:
            event.remove(self.store.engine, "before_cursor_execute", self._record)
        prefix = "EXPLAIN QUERY PLAN " if self.store.dialect == "sqlite" else "EXPLAIN "
        shown = []
        with self.store.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()
            for statement, parameters in self.statements:
                cursor.execute(prefix + statement, parameters)
                found = cursor.fetchall()
                if self.store.dialect == "sqlite":
                    shown += [f"{row[0]:>3} {row[1]:>3}  {row[3]}" for row in found]
                else:
                    shown += [row[0] for row in found]
                shown.append("")
        return "\n".join(shown).rstrip()


def forget_rollups(store: SqlTraceStore) -> None:
    """Delete every stored hourly sum (their feedback and tag splits go by cascade)."""
    with store.engine.begin() as conn:
        conn.execute(delete(s.trace_hours))


def queries(mid: int, last_day: int) -> list[tuple[str, str | None, list[str] | None]]:
    return [
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
        ("time range, slowest first", f"timestamp >= {mid}", ["execution_time DESC"]),
        ("time range, oldest first", f"timestamp >= {mid}", ["timestamp ASC"]),
        ("last day, slowest first", f"timestamp >= {last_day}", ["execution_time DESC"]),
        (
            "time range, least trustworthy first",
            f"timestamp >= {mid}",
            ["feedback.trustworthiness ASC"],
        ),
        (
            "feedback < 0.5, least trustworthy first",
            "feedback.trustworthiness < 0.5",
            ["feedback.trustworthiness ASC"],
        ),
        ("words in the response", "response MATCH 'refund policy'", ["timestamp DESC"]),
        ("a rare name in the request", f"request MATCH '{RARE_NAME}'", ["timestamp DESC"]),
        ("words in a span's payload", "span.content MATCH 'invoice shipping'", ["timestamp DESC"]),
        ("ILIKE on the response", "response ILIKE '%password%'", ["timestamp DESC"]),
        (
            "words AND tag, slowest first",
            "response MATCH 'cancel' AND tag.env = 'prod'",
            ["execution_time DESC"],
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--uri", default=None, help="store URI (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--load-only", action="store_true", help="fill the store to N traces and stop"
    )
    parser.add_argument(
        "--random-ids",
        action="store_true",
        help="load traces with random ids (as OTLP from other SDKs brings them), to compare",
    )
    args = parser.parse_args()
    uri = args.uri or f"sqlite:///{Path(tempfile.mkdtemp(prefix='tj-search-')) / 'search.db'}"
    store = SqlTraceStore(uri)
    experiment = store.get_or_create_experiment("search-benchmark")
    eid = experiment.experiment_id
    if store.dialect == "postgresql":  # finish a load that stopped before its indexes were built
        pg_bulk.restore(store.engine)
    have = stored_count(store, eid)
    gen = Generator(random_ids=args.random_ids)
    ingest_empty = None
    if have < args.n:
        if have == 0:
            ingest_empty = ingest_rate(store, gen, 0, eid)  # the first traces via the API
            have = INGEST_TRACES
        print(f"loading traces {have:,}..{args.n:,}", file=sys.stderr)
        start = time.perf_counter()
        bulk_load(store, have, args.n, int(eid), args.random_ids)
        print(f"loaded in {time.perf_counter() - start:,.0f} s", file=sys.stderr)
    if args.load_only:
        if ingest_empty is not None:
            print(f"log_traces into the empty store: {ingest_empty:,.0f} traces/s")
        return 0
    ingest_full, ingest_random = full_store_ingest(store, args.n, eid)
    total = stored_count(store, eid)
    # the maintenance `tracejudge gc` and the server's retention run (SQLite: word-search
    # segments merged into one, in short steps; PostgreSQL: nothing)
    start = time.perf_counter()
    compact_steps = store.compact_word_search()
    compact_s = time.perf_counter() - start
    # the timed log_traces calls wrote traces after the others: the open-ended ranges hold them
    mid = T0 + (args.n // 2) * STEP_MS
    last_day = T0 + args.n * STEP_MS - DAY_MS
    capture = PlanCapture(store)

    rows, plans = [], []
    for label, flt, order in queries(mid, last_day):

        def first_page(flt=flt, order=order):
            return store.search_traces([eid], flt, order, PAGE, include_spans=False)

        token = None
        try:
            for _ in range(99):
                page = store.search_traces([eid], flt, order, PAGE, token, include_spans=False)
                token = page.token
                if token is None:
                    break
        except StoreError as exc:  # the store's statement timeout stopped it: say so, go on
            rows.append(f"| {label} | `{flt}` | {', '.join(order or [])} | {exc} | – |")
            print(rows[-1], file=sys.stderr)
            continue

        def hundredth(flt=flt, order=order, token=token):
            return store.search_traces([eid], flt, order, PAGE, token, include_spans=False)

        p50, p95 = timed(first_page, args.repeat)
        hundredth_cell = "(fewer than 100 pages)"
        if token is not None:
            q50, q95 = timed(hundredth, args.repeat)
            hundredth_cell = f"{q50:.1f} / {q95:.1f}"
        rows.append(
            f"| {label} | `{flt}` | {', '.join(order or [])} | {p50:.1f} / {p95:.1f} | {hundredth_cell} |"
        )
        plans += [f"### {label}", "", "```", capture.plan(first_page), "```", ""]
        print(rows[-1], file=sys.stderr)

    stats_rows = []
    for label, flt, group, metrics in [
        (
            "last day per hour",
            f"timestamp >= {last_day}",
            "hour",
            ["count", "error_rate", "p50_latency", "p95_latency", "feedback.trustworthiness.mean"],
        ),
        ("last day per env", f"timestamp >= {last_day}", "tag.env", ["count", "error_rate"]),
        ("whole store per day", None, "day", ["count", "error_rate"]),
        ("whole store per day, with p50", None, "day", ["count", "p50_latency"]),
    ]:

        def aggregate(flt=flt, group=group, metrics=metrics):
            return store.trace_stats([eid], flt, group, metrics)

        rolled = hourly_rollups.answers(parse_filter(flt), group, metrics)
        forget_rollups(store)  # as after a load: the first aggregate computes its hours
        started = time.perf_counter()
        try:
            aggregate()
        except StoreError as exc:  # the statement timeout stopped it: say so, go on
            stats_rows.append(f"| {label} | `{flt}` | {group} | {', '.join(metrics)} | {exc} |")
            print(stats_rows[-1], file=sys.stderr)
            continue
        first = (time.perf_counter() - started) * 1000
        p50, p95 = timed(aggregate, max(3, args.repeat // 3))
        stats_rows.append(
            f"| {label} | `{flt}` | {group} | {', '.join(metrics)} | "
            f"{'hourly rollups' if rolled else 'scan'} | {first:.1f} | {p50:.1f} / {p95:.1f} |"
        )
        print(stats_rows[-1], file=sys.stderr)

    forget_rollups(store)  # then every hour filled, as the server does after a load
    started = time.perf_counter()
    filled = store.fill_hourly_rollups()
    fill_s = time.perf_counter() - started

    list_p50, list_p95 = timed(
        lambda: store.search_traces([eid], None, None, 1000, include_spans=False), args.repeat
    )
    spans_p50, spans_p95 = timed(
        lambda: store.search_traces([eid], "tag.env = 'prod'", None, PAGE, include_spans=True),
        args.repeat,
    )
    backend = store.dialect
    lines = [
        f"# Trace search on {backend}, {total:,} traces (p50 / p95 ms over {args.repeat} runs)"
        + (", random trace ids" if args.random_ids else ""),
        "",
        f"`python benchmarks/search.py --n {args.n}{' --uri <postgresql>' if backend == 'postgresql' else ''}"
        + (" --random-ids`" if args.random_ids else "`"),
        "",
        f"## Pages of {PAGE}",
        "",
        "| query | filter | order | first page | page 100 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## Aggregates (`trace_stats`)",
        "",
        "Read from the hourly rollups (`store/hourly_rollups.py`) where the filter is at most",
        "a time range (grouped by tag: without feedback metrics), else a scan of the matching",
        "traces. *First call*: the rollups emptied before it, so it computes and stores every",
        "hour it reads (once after a load); then p50 / p95 of the calls that follow.",
        "",
        "| what | filter | group by | metrics | answered from | first call ms | ms |",
        "|---|---|---|---|---|---|---|",
        *stats_rows,
        "",
        "## Lists and writes",
        "",
        f"- 1,000 traces without spans, newest first: {list_p50:.1f} / {list_p95:.1f} ms",
        f"- first page of `tag.env = 'prod'` with spans loaded: {spans_p50:.1f} / {spans_p95:.1f} ms",
        "- `log_traces` (batches of 500 traces with 2 spans, 2 tags and a feedback each): "
        + (f"{ingest_empty:,.0f} traces/s into the empty store, " if ingest_empty else "")
        + f"{ingest_full} traces/s at {total:,} traces; with random trace ids (OTLP from other "
        f"SDKs) {ingest_random} traces/s (median and range of {INGEST_ROUNDS} alternating rounds)",
        f"- every hour of the store computed and stored from none (`fill_hourly_rollups()`, "
        f"what `tracejudge server` does in the background): {filled:,} hours in {fill_s:.1f} s",
        f"- word-search indexes compacted before the queries (`compact_word_search()`, which "
        f"`tracejudge gc` and the server's retention run): {compact_steps} steps, {compact_s:.1f} s",
        "",
        "## Query plans of the first pages",
        "",
        *plans,
    ]
    print("\n".join(lines))
    suffix = "_random_ids" if args.random_ids else ""
    out = Path(__file__).parent / "results" / f"search_{backend}_{args.n}{suffix}.md"
    out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
