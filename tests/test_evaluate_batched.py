"""Runs scored in batches in this process: trace queries read page by page, resumed runs,
idempotent verdicts, mergeable metrics, and the errors of a wrong call (Ray itself: test_evaluate_ray.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

import tracejudge
from factories import make_trace
from tracejudge import TraceQuery, evaluate
from tracejudge.entities import Feedback, RunStatus
from tracejudge.errors import (
    InvalidArgumentError,
    InvalidFilterError,
    ModelNotConfiguredError,
    RunNotFoundError,
)
from tracejudge.evaluation.aggregate import MetricAccumulator, aggregate
from tracejudge.evaluation.batches import score_batch
from tracejudge.scorers import scorer
from tracejudge.store import get_store
from tracejudge.testing.monitor_scorers import answered, answered_unless_stopped, says_yes


def _log(n: int, experiment: str = "bot", yes_every: int = 3) -> list[str]:
    eid = get_store().get_or_create_experiment(experiment).experiment_id
    traces = [
        make_trace(
            eid,
            timestamp_ms=1_700_000_000_000 + i,
            outputs=f"answer {i}" + (" yes" if i % yes_every == 0 else ""),
        )
        for i in range(n)
    ]
    get_store().log_traces(traces)
    return [t.info.trace_id for t in traces]


def _verdict_counts(trace_ids: list[str], run_id: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for trace in get_store().get_traces(trace_ids, include_spans=False):
        for a in trace.info.assessments:
            if isinstance(a, Feedback) and a.run_id == run_id:
                counts[(trace.info.trace_id, a.name)] += 1
    return counts


def test_a_trace_query_is_scored_in_batches_like_a_list_of_traces(tracking):
    ids = _log(130)
    whole = evaluate(get_store().get_traces(ids), [answered, says_yes])
    batched = evaluate(TraceQuery("bot"), [answered, says_yes], batch_size=16)
    assert batched.run.status == RunStatus.FINISHED
    assert batched.metrics == whole.metrics
    assert batched.metrics["says_yes/pass_rate"] == pytest.approx(44 / 130)
    assert batched.run.row_count == 130
    assert batched.run.usage["scored"] == 260 and batched.run.usage["already_scored"] == 0
    counts = _verdict_counts(ids, batched.run_id)
    assert set(counts.values()) == {1} and len(counts) == 260
    # the table is read back from the store on first use
    frame = batched.result_df
    assert len(frame) == 130 and set(frame["trace_id"]) == set(ids)
    assert frame["says_yes/value"].sum() == 44


def test_a_filtered_query_with_max_results_scores_only_its_traces(tracking):
    ids = _log(40)
    get_store().set_trace_tag(ids[5], "env", "prod")
    get_store().set_trace_tag(ids[6], "env", "prod")
    result = evaluate(TraceQuery(["bot"], "tag.env = 'prod'"), [answered])
    assert result.run.row_count == 2 and result.metrics["answered/count"] == 2
    newest = evaluate(TraceQuery("bot", max_results=7), [answered], batch_size=3)
    assert set(_verdict_counts(ids, newest.run_id)) == {(i, "answered") for i in ids[-7:]}


def test_an_interrupted_run_resumes_scoring_only_what_it_lacks(tracking, monkeypatch):
    ids = _log(60)
    # newest first in batches of 10, two at a time: the oldest trace's batch (the last) starts
    # after the first four have finished and stored their verdicts
    monkeypatch.setenv("TRACEJUDGE_TEST_STOP_WORD", "answer 0")
    with pytest.raises(ModelNotConfiguredError):
        evaluate(TraceQuery("bot"), [answered_unless_stopped, says_yes], batch_size=10)
    [run] = tracejudge.search_runs("bot")
    assert run.status == RunStatus.FAILED and "answer 0" in (run.failure or "")
    before = _verdict_counts(ids, run.run_id)
    assert 80 <= len(before) < 120
    monkeypatch.delenv("TRACEJUDGE_TEST_STOP_WORD")
    # the run recorded its query and scorers: its id is enough
    resumed = evaluate(run_id=run.run_id)
    assert resumed.run_id == run.run_id and resumed.run.status == RunStatus.FINISHED
    assert resumed.run.usage["already_scored"] == len(before)
    assert resumed.run.usage["scored"] == 120 - len(before)
    after = _verdict_counts(ids, run.run_id)
    assert len(after) == 120 and set(after.values()) == {1}
    assert resumed.metrics["answered_unless_stopped/count"] == 60
    assert resumed.metrics["says_yes/pass_rate"] == pytest.approx(20 / 60)
    # resuming a finished run scores nothing
    again = evaluate(run_id=run.run_id)
    assert again.run.usage["scored"] == 0 and again.metrics == resumed.metrics


def test_a_run_given_a_list_resumes_with_the_list_given_again(tracking, monkeypatch):
    ids = _log(20)
    traces = get_store().get_traces(ids, include_spans=False)
    monkeypatch.setenv("TRACEJUDGE_TEST_STOP_WORD", "answer 12")
    with pytest.raises(ModelNotConfiguredError):
        evaluate(traces, [answered_unless_stopped], executor="local", run_id=None, batch_size=5)
    # a list of traces is scored the classic way (all at once): the failed run is a plain one
    monkeypatch.delenv("TRACEJUDGE_TEST_STOP_WORD")
    [run] = tracejudge.search_runs("bot")
    with pytest.raises(InvalidArgumentError, match="pass them again as data"):
        evaluate(run_id=run.run_id)
    resumed = evaluate(traces, [answered_unless_stopped], run_id=run.run_id)
    counts = _verdict_counts(ids, run.run_id)
    assert len(counts) == 20 and set(counts.values()) == {1}
    assert resumed.metrics["answered_unless_stopped/count"] == 20


def test_a_batch_scored_twice_writes_each_verdict_once(tracking):
    ids = _log(12)
    store = get_store()
    first = asyncio.run(
        score_batch(store, ids, [answered, says_yes], "run-x", asyncio.Semaphore(4))
    )
    assert (first.traces, first.scored, first.reused) == (12, 24, 0)
    second = asyncio.run(
        score_batch(store, ids, [answered, says_yes], "run-x", asyncio.Semaphore(4))
    )
    assert (second.scored, second.reused) == (0, 24)
    assert second.metrics.metrics() == first.metrics.metrics()
    assert set(_verdict_counts(ids, "run-x").values()) == {1}
    store.delete_traces(ids[:2])
    third = asyncio.run(score_batch(store, ids, [answered], "run-y", asyncio.Semaphore(4)))
    assert (third.traces, third.missing) == (10, 2)


def test_merged_accumulators_give_the_metrics_of_all_verdicts():
    values = [0.1, 0.9, 0.5, None, 0.7, 0.3, 0.2]
    feedbacks = [Feedback("trust", v) for v in values] + [
        Feedback("ok", v) for v in (True, False, True)
    ]
    parts = [MetricAccumulator().add_all(feedbacks[i : i + 3]) for i in range(0, 10, 3)]
    merged = MetricAccumulator()
    for part in parts:
        merged.merge(part)
    assert merged.metrics() == aggregate(feedbacks)
    assert merged.metrics()["trust/median"] == pytest.approx(0.4)
    assert merged.metrics()["ok/pass_rate"] == pytest.approx(2 / 3)


def test_wrong_calls_get_clear_errors_and_store_no_run(tracking):
    _log(5)

    @scorer
    def local_only(outputs) -> bool:
        return True

    cases = [
        (dict(data=TraceQuery("bot"), scorers=[answered], executor="spark"), "executor must be"),
        (
            dict(data=TraceQuery("bot"), scorers=[answered], ray_address="auto"),
            "goes with executor='ray'",
        ),
        (
            dict(data=[{"inputs": {"q": 1}, "outputs": "a"}], scorers=[answered], executor="ray"),
            "has no trace",
        ),
        (
            dict(
                data=TraceQuery("bot"), scorers=[answered], predict_fn=lambda q: q, executor="ray"
            ),
            "run in one process",
        ),
        (
            dict(data=TraceQuery("bot"), scorers=[local_only], executor="ray"),
            "cannot be sent to other processes",
        ),
        (dict(data=TraceQuery("bot"), scorers=[answered], batch_size=0), "batch_size"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(InvalidArgumentError, match=needle):
            evaluate(**kwargs)
    with pytest.raises(InvalidFilterError):
        evaluate(TraceQuery("bot", "tag.env = "), [answered])
    with pytest.raises(InvalidArgumentError, match="max_results"):
        TraceQuery("bot", max_results=0)
    with pytest.raises(RunNotFoundError):
        evaluate(run_id="run-nope")
    assert tracejudge.search_runs("bot") == []
    run = evaluate(TraceQuery("bot"), [answered]).run
    with pytest.raises(InvalidArgumentError, match="same scorers"):
        evaluate(TraceQuery("bot"), [says_yes], run_id=run.run_id)


def test_a_run_stopped_with_ctrl_c_is_marked_interrupted_and_resumes(sqlite_tracking):
    ids = _log(60)
    script = (
        "from tracejudge import TraceQuery, evaluate\n"
        "from tracejudge.testing.monitor_scorers import slow_answered\n"
        "evaluate(TraceQuery('bot'), [slow_answered], batch_size=5, max_concurrency=2)\n"
    )
    env = {
        **os.environ,
        "TRACEJUDGE_TRACKING_URI": sqlite_tracking,
        "TRACEJUDGE_TEST_SCORER_DELAY_S": "0.2",
        "TRACEJUDGE_PROGRESS": "0",
    }
    driver = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        _verdict_counts(ids, r.run_id) for r in tracejudge.search_runs("bot")
    ):
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode != 0 and b"KeyboardInterrupt" in stderr
    [run] = tracejudge.search_runs("bot")
    assert run.status == RunStatus.INTERRUPTED
    before = _verdict_counts(ids, run.run_id)
    assert 0 < len(before) < 60
    resumed = evaluate(run_id=run.run_id)
    assert resumed.run.status == RunStatus.FINISHED
    assert resumed.run.usage["already_scored"] == len(before)
    after = _verdict_counts(ids, run.run_id)
    assert len(after) == 60 and set(after.values()) == {1}
