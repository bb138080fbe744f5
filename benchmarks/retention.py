"""Retention under load: how fast old traces go, and what writers see meanwhile.

    python benchmarks/retention.py --uri sqlite:///copy-of-search.db [--older-than-index 1000000]

Run on a store filled by ``benchmarks/search.py`` (a copy: this deletes its traces). The main
process writes batches of 50 traces through ``log_traces`` for 15 s alone (the baseline), then
goes on writing while a second process deletes every benchmark trace older than the cutoff
with ``delete_traces_before`` (what ``tracejudge gc`` and ``server --retention`` run). Printed:
traces/s written alone and during the deletion, the slowest write batches, the deletion rate,
and the store's size before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time

from common import write_result
from search import STEP_MS, T0, Generator
from tracejudge.store import SqlTraceStore

BATCH = 50


def delete_old(uri: str, before_ms: int, queue: mp.Queue) -> None:
    store = SqlTraceStore(uri)
    start = time.perf_counter()
    deleted = store.delete_traces_before(before_ms)
    queue.put((deleted, time.perf_counter() - start))


def size_bytes(store: SqlTraceStore) -> int:
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar()
        return int((pages - free) * size)


def write_for(store, gen, experiment_id, next_i, until) -> tuple[int, list[float], int]:
    """Write batches until ``until()`` says stop; returns traces written, batch seconds, next i."""
    latencies = []
    written = 0
    while not until():
        batch = [gen.trace(i, experiment_id) for i in range(next_i, next_i + BATCH)]
        start = time.perf_counter()
        store.log_traces(batch)
        latencies.append(time.perf_counter() - start)
        written += BATCH
        next_i += BATCH
    return written, latencies, next_i


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True)
    parser.add_argument(
        "--older-than-index",
        type=int,
        default=1_000_000,
        help="delete the benchmark traces numbered below this (one per second from T0)",
    )
    args = parser.parse_args()
    store = SqlTraceStore(args.uri)
    experiment_id = store.get_or_create_experiment("search-benchmark").experiment_id
    gen = Generator(seed=4242)
    next_i = 50_000_000  # far after the benchmark's traces: never deleted here
    before = size_bytes(store)

    start = time.perf_counter()
    alone, alone_lat, next_i = write_for(
        store, gen, experiment_id, next_i, lambda: time.perf_counter() - start > 15
    )
    alone_rate = alone / (time.perf_counter() - start)

    spawn = mp.get_context("spawn")
    queue: mp.Queue = spawn.Queue()
    cutoff = T0 + args.older_than_index * STEP_MS
    gc = spawn.Process(target=delete_old, args=(args.uri, cutoff, queue))
    start = time.perf_counter()
    gc.start()
    during, during_lat, next_i = write_for(
        store, gen, experiment_id, next_i, lambda: not gc.is_alive()
    )
    elapsed = time.perf_counter() - start
    gc.join()
    deleted, gc_seconds = queue.get(timeout=60)
    during_rate = during / elapsed
    after = size_bytes(store)
    during_lat.sort()
    lines = [
        f"# Retention on {store.dialect}: deleting {deleted:,} traces while writing",
        "",
        f"`python benchmarks/retention.py --uri <{store.dialect} store of benchmarks/search.py>"
        f" --older-than-index {args.older_than_index}`",
        "",
        "| | traces/s written | write batch p50 / p99 / max (ms) |",
        "|---|---|---|",
        f"| writing alone (15 s) | {alone_rate:,.0f} | "
        f"{statistics.median(alone_lat) * 1000:.0f} / "
        f"{sorted(alone_lat)[int(len(alone_lat) * 0.99)] * 1000:.0f} / {max(alone_lat) * 1000:.0f} |",
        f"| writing during the deletion ({elapsed:,.0f} s) | {during_rate:,.0f} | "
        f"{statistics.median(during_lat) * 1000:.0f} / "
        f"{during_lat[int(len(during_lat) * 0.99)] * 1000:.0f} / {during_lat[-1] * 1000:.0f} |",
        "",
        f"- deleted {deleted:,} traces in {gc_seconds:,.0f} s: {deleted / gc_seconds:,.0f} traces/s "
        "(one transaction per batch, each sized to take about 0.1 s)",
        f"- writes during the deletion ran at {during_rate / alone_rate:.0%} of the rate alone",
        f"- live data {before / 1e9:.2f} GB before, {after / 1e9:.2f} GB after "
        "(SQLite: pages in use; PostgreSQL: the database, before VACUUM)",
    ]
    print("\n".join(lines))
    write_result(f"retention_{store.dialect}.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
