"""Head sampling (``TRACEJUDGE_TRACE_SAMPLING_RATIO``) on a real SQLite file: traces kept whole
or not at all, the app's results untouched, evaluate() keeping every trace of its run."""

from __future__ import annotations

import logging

import tracejudge
from tracejudge.scorers import scorer
from tracejudge.tracing import keep_every_trace
from tracejudge.tracing.sampling import keeps

RATIO = "TRACEJUDGE_TRACE_SAMPLING_RATIO"


@tracejudge.trace
def step(x: int) -> int:
    return x + 1


@tracejudge.trace
def pipeline(x: int) -> int:
    return step(step(x))


def _stored():
    tracejudge.flush()
    return tracejudge.search_traces(return_type="list", max_results=1000)


def test_about_the_ratio_of_traces_is_kept_each_whole(sqlite_tracking, monkeypatch):
    monkeypatch.setenv(RATIO, "0.5")
    assert [pipeline(i) for i in range(300)] == [i + 2 for i in range(300)]
    stored = _stored()
    # 150 expected; outside 90..210 has a chance below 1e-11
    assert 90 <= len(stored) <= 210, len(stored)
    assert all(sorted(s.name for s in t.data.spans) == ["pipeline", "step", "step"] for t in stored)


def test_ratio_zero_records_nothing_and_the_app_runs_as_before(sqlite_tracking, monkeypatch):
    monkeypatch.setenv(RATIO, "0")
    with tracejudge.start_span("request") as span:
        assert pipeline(1) == 3
        span.set_outputs("done")
    assert tracejudge.get_last_active_trace_id() is None
    assert _stored() == []
    with keep_every_trace():  # e.g. a request a person asked to see
        pipeline(5)
    [kept] = _stored()
    assert kept.info.trace_id == tracejudge.get_last_active_trace_id()


def test_the_decision_follows_the_trace_id(monkeypatch):
    ids = [(i * 0x9E3779B97F4A7C15) << 40 | i for i in range(1, 2000)]
    monkeypatch.setenv(RATIO, "0.3")
    kept_at_30 = {i for i in ids if keeps(i)}
    monkeypatch.setenv(RATIO, "0.6")
    kept_at_60 = {i for i in ids if keeps(i)}
    assert kept_at_30 <= kept_at_60  # kept at a lower ratio, kept at a higher one
    assert {i for i in ids if keeps(i)} == kept_at_60  # the same answer again
    assert 0.2 < len(kept_at_30) / len(ids) < 0.4 and 0.5 < len(kept_at_60) / len(ids) < 0.7


def test_a_ratio_that_does_not_parse_is_logged_and_every_trace_kept(
    sqlite_tracking, monkeypatch, caplog
):
    monkeypatch.setenv(RATIO, "2")
    with caplog.at_level(logging.WARNING, logger="tracejudge"):
        for i in range(5):
            pipeline(i)
    assert len(_stored()) == 5
    assert any(RATIO in r.getMessage() and "from 0 to 1" in r.getMessage() for r in caplog.records)


def test_evaluate_records_every_row_whatever_the_ratio(sqlite_tracking, monkeypatch):
    monkeypatch.setenv(RATIO, "0")

    @scorer
    def spans(trace) -> int:
        return len(trace.data.spans)

    rows = [{"inputs": {"x": i}} for i in range(6)]
    result = tracejudge.evaluate(rows, scorers=[spans], predict_fn=pipeline)
    assert list(result.result_df["spans/value"]) == [4] * 6  # the row's span, pipeline, 2 steps
    assert len(_stored()) == 6
