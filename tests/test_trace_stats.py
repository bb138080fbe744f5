"""trace_stats: dashboard aggregates computed by the database, alike on SQLite, PostgreSQL and
through the tracking server, and checked against the same figures computed here in Python."""

from __future__ import annotations

import random

import pytest

from factories import make_trace
from percentiles import near, nearest_rank
from tracejudge.entities import Feedback, TraceState
from tracejudge.errors import InvalidArgumentError, InvalidFilterError

HOUR = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR  # the start of an hour


@pytest.fixture
def logged(store):
    rng = random.Random(3)
    traces = []
    for i in range(60):
        trace = make_trace(
            timestamp_ms=T0 + (i % 3) * HOUR + i * 1000,
            duration_ms=rng.randint(10, 900),
            state=TraceState.ERROR if i % 7 == 0 else TraceState.OK,
            tags={"env": "prod" if i % 2 else "dev"} if i % 5 else {},
        )
        if i % 4:
            trace.info.assessments.append(
                Feedback("grounded", "yes" if i % 3 else "no", trace_id=trace.info.trace_id)
            )
            trace.info.assessments.append(
                Feedback("trust", round(rng.random(), 3), trace_id=trace.info.trace_id)
            )
        traces.append(trace)
    store.log_traces(traces)
    # a newer verdict replaces the first trace's: only the current one counts
    first = next(t for t in traces if t.info.assessments)
    store.log_assessment(Feedback("trust", 0.0, trace_id=first.info.trace_id))
    current_trust = {
        t.info.trace_id: t.info.assessments[1].value for t in traces if t.info.assessments
    }
    current_trust[first.info.trace_id] = 0.0
    return store, traces, current_trust


def test_per_hour_counts_errors_and_latency_percentiles(logged):
    store, traces, _ = logged
    rows = store.trace_stats(
        ["0"], None, "hour", ["count", "error_rate", "p50_latency", "p95_latency", "mean_latency"]
    )
    assert [r["group"] for r in rows] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    for row in rows:
        mine = [t.info for t in traces if t.info.request_time // HOUR * HOUR == row["group"]]
        durations = [i.execution_duration for i in mine]
        assert row["count"] == len(mine)
        assert row["error_rate"] == pytest.approx(
            sum(i.state == TraceState.ERROR for i in mine) / len(mine)
        )
        assert near(row["p50_latency"], nearest_rank(durations, 0.5))
        assert near(row["p95_latency"], nearest_rank(durations, 0.95))
        assert row["mean_latency"] == pytest.approx(sum(durations) / len(durations))


def test_per_tag_value_with_feedback_statistics(logged):
    store, traces, trust = logged
    rows = store.trace_stats(
        ["0"],
        None,
        "tag.env",
        [
            "count",
            "feedback.trust.mean",
            "feedback.grounded.pass_rate",
            "feedback.trust.count",
            "p50_latency",  # in the same query as the joins on PostgreSQL: durations not doubled
        ],
    )
    assert [r["group"] for r in rows] == ["dev", "prod", None]  # None: traces without the tag
    for row in rows:
        mine = [t for t in traces if t.info.tags.get("env") == row["group"]]
        scored = [trust[t.info.trace_id] for t in mine if t.info.trace_id in trust]
        verdicts = [t.info.assessments[0].value == "yes" for t in mine if t.info.assessments]
        assert row["count"] == len(mine)
        assert row["feedback.trust.count"] == len(scored)
        assert row["feedback.trust.mean"] == pytest.approx(sum(scored) / len(scored))
        assert row["feedback.grounded.pass_rate"] == pytest.approx(sum(verdicts) / len(verdicts))
        durations = [t.info.execution_duration for t in mine]
        assert row["p50_latency"] == nearest_rank(durations, 0.5)


def test_filtered_and_ungrouped(logged):
    store, traces, _ = logged
    (row,) = store.trace_stats(["0"], "status = 'ERROR' AND tag.env = 'prod'", None, ["count"])
    expected = sum(
        t.info.state == TraceState.ERROR and t.info.tags.get("env") == "prod" for t in traces
    )
    assert row == {"group": None, "count": expected}
    assert store.trace_stats(["0"], "status = 'nothing'", "day", None) == []


@pytest.mark.parametrize(
    "group_by, metrics, error, says",
    [
        ("week", None, InvalidArgumentError, "Cannot group by"),
        ("tag.", None, InvalidArgumentError, "Cannot group by"),
        (None, ["p100_latency"], InvalidArgumentError, "Unknown metric"),
        (None, ["feedback.x.median"], InvalidArgumentError, "Unknown metric"),
        (None, ["count; DROP TABLE traces"], InvalidArgumentError, "Unknown metric"),
    ],
)
def test_bad_arguments_are_clear_errors(sql_store, group_by, metrics, error, says):
    with pytest.raises(error, match=says):
        sql_store.trace_stats(["0"], None, group_by, metrics)


def test_bad_input_is_a_typed_error_through_the_server_too(store):
    with pytest.raises(InvalidFilterError):
        store.trace_stats(["0"], "tag.env = ", "hour", None)
    with pytest.raises(InvalidArgumentError, match="Unknown metric"):
        store.trace_stats(["0"], None, None, ["p0_latency"])


def test_the_public_function_gives_a_dataframe_with_times(sqlite_tracking):
    import tracejudge
    from tracejudge.store import get_store

    get_store().log_traces([make_trace(timestamp_ms=T0 + 5), make_trace(timestamp_ms=T0 + HOUR)])
    frame = tracejudge.trace_stats(["0"], group_by="hour", metrics=["count"])
    assert list(frame["count"]) == [1, 1]
    assert str(frame["group"].iloc[0].tz) == "UTC"
    assert frame["group"].iloc[1].value // 1_000_000 == T0 + HOUR
