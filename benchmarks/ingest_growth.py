"""Does ``log_traces`` slow down as a PostgreSQL store grows? Interleaved rounds, same run.

    python benchmarks/ingest_growth.py --uri postgresql+psycopg://postgres@127.0.0.1:5432/tj_bench
                                       [--rounds 4] [--traces 8000] [--without-span-words]

``--uri`` names a store already filled by ``benchmarks/search.py --uri … --n N --load-only``.
Each round writes ``--traces`` new traces (the shape ``search.py`` generates: two spans with
payloads, two tags, a feedback on 80 %) through ``log_traces`` in batches of 500, first into a
freshly created empty database on the same server, then into the full store, so both see the
same server settings and the same load on the machine; the medians are the figures. Every
round into the full store writes traces it has not seen, in the hours after the loaded ones.

``--without-span-words`` drops the span-payload word index (``ix_spans_content_words``, GIN)
in the empty stores and, for the run, in the full store, to measure what that index costs
(the full store's index is rebuilt at the end: minutes at 1M traces). The server settings that
decide how much of the indexes stays in memory are printed with the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import search
from tracejudge.store import SqlTraceStore

SETTINGS = ("shared_buffers", "max_wal_size", "wal_compression", "checkpoint_timeout", "work_mem")
SPAN_WORDS = "ix_spans_content_words"


def _drop_database(server_uri: str, name: str, create: bool = False) -> str:
    """Drop ``name`` on the server of ``server_uri`` (and create it anew); its URI."""
    admin = create_engine(server_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_uri).set(database=name).render_as_string(hide_password=False)


def _settings(store: SqlTraceStore) -> str:
    with store.engine.connect() as conn:
        return ", ".join(f"{k} {conn.execute(text(f'SHOW {k}')).scalar()}" for k in SETTINGS)


def _drop_span_words(store: SqlTraceStore) -> str | None:
    """Drop the span-payload word index; its definition (None if there was none)."""
    with store.engine.begin() as conn:
        ddl = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": SPAN_WORDS}
        ).scalar()
        if ddl:
            conn.execute(text(f"DROP INDEX {SPAN_WORDS}"))
    return ddl


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uri", required=True, help="a PostgreSQL store filled by search.py")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--traces", type=int, default=8000, help="traces per round")
    parser.add_argument("--without-span-words", action="store_true")
    args = parser.parse_args()
    search.INGEST_TRACES = args.traces

    full = SqlTraceStore(args.uri)
    if full.dialect != "postgresql":
        parser.error("--uri must be a PostgreSQL store")
    full_eid = full.get_or_create_experiment("search-benchmark").experiment_id
    n = search.stored_count(full, full_eid)
    rebuild = _drop_span_words(full) if args.without_span_words else None
    clock = int(time.time())
    # new traces after the loaded ones and after any an earlier run of this script wrote
    first = n + 3_600 + (clock % 100_000) * 1_000
    empty_rates, full_rates = [], []
    try:
        for k in range(args.rounds):
            empty_uri = _drop_database(args.uri, "tj_ingest_growth_empty", create=True)
            empty = SqlTraceStore(empty_uri)
            if args.without_span_words:
                _drop_span_words(empty)
            eid = empty.get_or_create_experiment("search-benchmark").experiment_id
            empty_rates.append(search.ingest_rate(empty, search.Generator(seed=clock + k), 0, eid))
            empty.engine.dispose()
            gen = search.Generator(seed=clock + 1_000 + k)
            full_rates.append(search.ingest_rate(full, gen, first + k * args.traces, full_eid))
            print(
                f"round {k + 1}: empty {empty_rates[-1]:,.0f}, "
                f"at {n:,} traces {full_rates[-1]:,.0f} traces/s",
                flush=True,
            )
    finally:
        _drop_database(args.uri, "tj_ingest_growth_empty")
        if rebuild:
            start = time.perf_counter()
            with full.engine.begin() as conn:
                conn.execute(text("SET LOCAL statement_timeout = 0"))  # the store sets one
                conn.execute(text(rebuild))
            print(f"{SPAN_WORDS} rebuilt in {time.perf_counter() - start:,.0f} s", flush=True)
    empty_median, full_median = statistics.median(empty_rates), statistics.median(full_rates)
    print(
        f"log_traces{' without the span-payload word index' if rebuild else ''}: "
        f"{empty_median:,.0f} traces/s into an empty store, {full_median:,.0f} at {n:,} traces "
        f"({full_median / empty_median:.2f}×; medians of {args.rounds} interleaved rounds of "
        f"{args.traces:,}); server: {_settings(full)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
