"""Hourly rollups behind trace_stats: the latency histogram's error bound, and per-hour sums
that stay true while traces are written, rewritten and deleted — checked against the exact
scan of the traces (``stats.compute``) on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import random
import threading
import time

import pytest

from factories import make_trace
from percentiles import near, nearest_rank
from tracejudge.entities import Feedback, TraceState
from tracejudge.query import parse_filter
from tracejudge.store import hourly_rollups, latency_sketch, rollup_filler, stats

HOUR = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR
METRICS = ["count", "error_rate", "mean_latency", "p50_latency", "p95_latency"]
FEEDBACK = ["feedback.trust.mean", "feedback.trust.count", "feedback.grounded.pass_rate"]


def test_a_bucket_reads_back_within_the_bound_and_small_durations_exactly():
    assert all(latency_sketch.value_of(latency_sketch.bucket(v)) == v for v in range(110))
    for v in list(range(110, 5000)) + [10**k + d for k in range(4, 10) for d in (-1, 0, 1)]:
        assert near(latency_sketch.value_of(latency_sketch.bucket(v)), v), v
    assert latency_sketch.bucket(-5) == 0
    assert latency_sketch.bucket(1e60) == latency_sketch.MAX_BUCKET


def test_merged_histograms_give_nearest_rank_percentiles_within_the_bound():
    rng = random.Random(7)
    parts = [
        [int(rng.lognormvariate(6, 1.5)) for _ in range(rng.randint(0, 400))] for _ in range(30)
    ]
    blobs = [latency_sketch.summarize((v, 1) for v in part) for part in parts]
    merged = latency_sketch.merge(blobs)
    everything = [v for part in parts for v in part]
    assert int(merged.sum()) == len(everything)
    for p in (0.01, 0.5, 0.9, 0.99, 1.0):
        assert near(latency_sketch.percentile(merged, p), nearest_rank(everything, p))
    assert latency_sketch.percentile(latency_sketch.merge([]), 0.5) is None


@pytest.mark.parametrize(
    "filter_string, group_by, metrics, answered",
    [
        (None, "day", ["count"], True),
        ("timestamp >= 5 AND timestamp < 9", "hour", METRICS, True),
        ("timestamp > 5.5", None, ["p99_latency"], True),
        ("timestamp >= 5 OR timestamp < 2", "hour", ["count"], False),
        ("tag.env = 'prod'", "hour", ["count"], False),
        ("status = 'ERROR'", None, ["count"], False),
        (None, "tag.env", ["count", "p50_latency"], True),
        (None, "tag.env", ["count", "feedback.trust.mean"], False),
        (None, "hour", ["feedback.trust.mean", "feedback.ok.pass_rate"], True),
    ],
)
def test_which_aggregates_the_rollups_answer(filter_string, group_by, metrics, answered):
    assert hourly_rollups.answers(parse_filter(filter_string), group_by, metrics) is answered


def _log(store, rng, hours, per_hour, experiment_id="0"):
    traces = []
    for h in hours:
        for i in range(per_hour):
            env = rng.choice(["prod", "dev", "staging", None])
            trace = make_trace(
                timestamp_ms=T0 + h * HOUR + rng.randrange(HOUR),
                tags={"env": env} if env else {},
                duration_ms=None if i % 11 == 0 else int(rng.lognormvariate(5, 1.2)),
                state=TraceState.ERROR if rng.random() < 0.1 else TraceState.OK,
                experiment_id=experiment_id,
            )
            if i % 3:
                trace.info.assessments.append(
                    Feedback("trust", round(rng.random(), 3), trace_id=trace.info.trace_id)
                )
            if i % 4:
                verdict = rng.choice(["yes", "no", "Pass", "maybe"])
                trace.info.assessments.append(
                    Feedback("grounded", verdict, trace_id=trace.info.trace_id)
                )
            traces.append(trace)
    store.log_traces(traces)
    return traces


def _check(store, filter_string, group_by, experiment_ids=("0",), metrics=METRICS + FEEDBACK):
    """The rollups' answer against the exact scan of the same traces."""
    rolled = store.trace_stats(
        list(experiment_ids) if experiment_ids else None, filter_string, group_by, metrics
    )
    with store.engine.connect() as conn:
        where, _ = store._where(
            conn, parse_filter(filter_string), list(experiment_ids) if experiment_ids else None
        )
        exact = stats.compute(conn, store.dialect, where, group_by, metrics)
    assert [r["group"] for r in rolled] == [r["group"] for r in exact]
    for mine, truth in zip(rolled, exact, strict=True):
        assert mine["count"] == truth["count"]
        assert mine["error_rate"] == pytest.approx(truth["error_rate"])
        assert mine["mean_latency"] == pytest.approx(truth["mean_latency"])
        for name in set(metrics) & set(FEEDBACK):
            assert mine[name] == pytest.approx(truth[name]), name
        for p in ("p50_latency", "p95_latency"):
            assert (mine[p] is None) == (truth[p] is None)
            if truth[p] is not None:
                assert near(mine[p], truth[p]), (p, mine[p], truth[p])
    return rolled


def _stored(store):
    with store.engine.connect() as conn:
        return hourly_rollups.stored_hours(conn)


def test_sums_are_stored_for_ended_hours_and_match_the_traces(sql_store):
    rng = random.Random(1)
    _log(sql_store, rng, range(0, 30), 20)
    _check(sql_store, None, "day")
    assert len(_stored(sql_store)) == 30  # every whole hour, now stored
    _check(sql_store, None, "tag.env", metrics=METRICS)
    _check(sql_store, None, "tag.env", metrics=METRICS)  # from the stored split
    _check(sql_store, None, "tag.nothing", metrics=METRICS)  # every trace without it
    _check(sql_store, f"timestamp >= {T0 + 5 * HOUR + 77}", "tag.env", metrics=METRICS)
    _check(sql_store, None, "hour")
    _check(sql_store, None, None)
    _check(
        sql_store, f"timestamp >= {T0 + HOUR + 1234} AND timestamp < {T0 + 20 * HOUR - 5}", "hour"
    )
    _check(sql_store, f"timestamp > {T0 + 3 * HOUR} AND timestamp <= {T0 + 4 * HOUR}", None)
    _check(sql_store, f"timestamp >= {T0 + 100 * HOUR}", "day")  # nothing in range


def test_writes_into_stored_hours_are_seen(sql_store):
    rng = random.Random(2)
    traces = _log(sql_store, rng, range(0, 6), 15)
    _check(sql_store, None, "hour")
    _check(sql_store, None, "tag.env", metrics=METRICS)
    stored = set(_stored(sql_store))
    assert len(stored) == 6
    _log(sql_store, rng, [2], 3)  # late traces of a stored hour
    rewritten = traces[0]  # the same trace logged again, now failed and slower
    rewritten.info.state = TraceState.ERROR
    rewritten.info.execution_duration = 99_000
    sql_store.log_traces([rewritten])
    sql_store.delete_traces([traces[-1].info.trace_id])
    judged = next(t for t in traces[15:] if t.info.request_time >= T0 + 4 * HOUR)
    sql_store.log_assessment(Feedback("trust", 0.0, trace_id=judged.info.trace_id))  # a new verdict
    tagged = traces[20]
    sql_store.set_trace_tag(tagged.info.trace_id, "env", "canary")  # a tag set afterwards
    stale = stored - set(_stored(sql_store))
    hour_of = lambda t: (0, t.info.request_time // HOUR * HOUR)  # noqa: E731
    assert stale == {
        (0, T0 + 2 * HOUR),
        hour_of(rewritten),
        hour_of(traces[-1]),
        hour_of(judged),
        hour_of(tagged),
    }
    rows = _check(sql_store, None, "tag.env", metrics=METRICS)
    assert [r["count"] for r in rows if r["group"] == "canary"] == [1]
    _check(sql_store, None, "hour")
    _check(sql_store, None, "day")
    assert len(_stored(sql_store)) == 6


def test_every_experiment_and_one_experiment(sql_store):
    rng = random.Random(3)
    other = sql_store.create_experiment("other").experiment_id
    _log(sql_store, rng, range(0, 4), 10)
    _log(sql_store, rng, range(2, 8), 10, experiment_id=other)
    _check(sql_store, None, "hour", experiment_ids=None)
    _check(sql_store, None, "hour", experiment_ids=(other,))
    _check(sql_store, None, None, experiment_ids=("0", other))
    assert {exp for exp, _ in _stored(sql_store)} == {0, int(other)}


def test_fill_stores_every_ended_hour_once_and_the_aggregates_then_read_them(sql_store):
    rng = random.Random(5)
    other = sql_store.create_experiment("other").experiment_id
    _log(sql_store, rng, [0, 1, 5], 8)  # hours 2-4 hold no trace: stored as empty
    _log(sql_store, rng, [3, 4], 6, experiment_id=other)
    now = T0 + 5 * HOUR + 10  # hour 5 has not ended
    assert hourly_rollups.fill(sql_store.engine, [int(other)], now_ms=now) == 2
    assert hourly_rollups.fill(sql_store.engine, None, now_ms=now) == 5
    assert hourly_rollups.fill(sql_store.engine, None, now_ms=now) == 0
    assert _stored(sql_store) == sorted(
        [(0, T0 + h * HOUR) for h in range(5)] + [(int(other), T0 + h * HOUR) for h in (3, 4)]
    )
    assert sql_store.fill_hourly_rollups() == 1  # now every hour has ended
    _check(sql_store, None, "hour", experiment_ids=None)
    _log(sql_store, rng, [1], 2)  # a late write empties its hour; the next fill restores it
    assert sql_store.fill_hourly_rollups(["0"]) == 1
    _check(sql_store, None, "day")


def _wait_until_stored(store, hours, timeout_s):
    """The stored hours once ``hours`` are, or at ``timeout_s`` (sized for a busy machine)."""
    deadline = time.monotonic() + timeout_s
    while len(_stored(store)) < hours and time.monotonic() < deadline:
        time.sleep(0.05)
    return _stored(store)


def test_the_filler_thread_fills_the_rollups_in_the_background(sql_store):
    _log(sql_store, random.Random(6), range(0, 3), 4)
    stop = rollup_filler.start_rollup_thread(sql_store, every_s=0.05)
    try:
        assert len(_wait_until_stored(sql_store, 3, timeout_s=60)) == 3
    finally:
        stop.set()


def test_the_server_fills_the_rollups_when_it_starts(sqlite_uri):
    """``tracejudge server``: the hours of a store's past traces are stored without anyone
    asking for an aggregate, so a dashboard's first one reads them."""
    from tracejudge.store import SqlTraceStore
    from tracejudge.testing.server_process import ServerProcess

    store = SqlTraceStore(sqlite_uri)
    _log(store, random.Random(7), range(0, 4), 3)
    server = ServerProcess(sqlite_uri)
    try:
        assert len(_wait_until_stored(store, 4, timeout_s=120)) == 4
    finally:
        server.stop()
        store.close()


def test_the_current_hour_is_read_from_the_traces_not_stored(sql_store):
    rng = random.Random(4)
    _log(sql_store, rng, range(0, 3), 5)
    now = T0 + 2 * HOUR + 10  # the third hour has not ended
    rows = hourly_rollups.compute(sql_store.engine, None, None, "hour", ["count"], now_ms=now)
    assert [r["count"] for r in rows] == [5, 5, 5]
    assert [h for _, h in _stored(sql_store)] == [T0, T0 + HOUR]


def test_a_write_during_a_readers_count_is_not_lost(sql_store, monkeypatch):
    """A trace logged into an hour between the reader's count of it and its store of the
    sums: the writer waits for the reader (SQLite's write lock; PostgreSQL's advisory lock),
    then its trigger deletes what the reader stored, so the next aggregate counts it."""
    rng = random.Random(5)
    _log(sql_store, rng, range(0, 3), 5)
    counted = hourly_rollups._computed_hours
    writer = threading.Thread(target=lambda: _log(sql_store, random.Random(6), [1], 1))

    def count_then_let_a_writer_in(conn, hours, tag):
        found = counted(conn, hours, tag)
        if not writer.is_alive() and writer.ident is None:
            writer.start()
            writer.join(timeout=2)  # it must wait for us; if it could finish, we would be stale
        return found

    monkeypatch.setattr(hourly_rollups, "_computed_hours", count_then_let_a_writer_in)
    sql_store.trace_stats(["0"], None, "hour", ["count"])
    writer.join(timeout=120)
    assert not writer.is_alive()
    monkeypatch.undo()
    assert (0, T0 + HOUR) not in _stored(sql_store)  # the writer's trigger deleted it
    rows = _check(sql_store, None, "hour")
    assert [r["count"] for r in rows] == [5, 6, 5]


def test_a_quiet_stretch_is_stored_as_empty_hours_and_a_late_trace_there_counts(sql_store):
    rng = random.Random(8)
    _log(sql_store, rng, [0, 500], 3)
    _check(sql_store, None, "day")
    assert len(_stored(sql_store)) == 501  # the empty hours between are known to be empty
    _log(sql_store, rng, [250], 2)
    assert (0, T0 + 250 * HOUR) not in _stored(sql_store)
    (row,) = _check(sql_store, None, None)
    assert row["count"] == 8
