"""evaluate() under data and models that once broke its promises (found by an audit): a row's
problem stays that row's, a run never ends RUNNING, a trace gets one verdict per scorer, and
unreadable model replies are errors, not verdicts, and are not cached. Judges are served by a
scripted chat server on 127.0.0.1; traces live in a real SQLite store."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

import tracejudge
from tracejudge.entities import Feedback, RunStatus
from tracejudge.errors import ModelAuthenticationError
from tracejudge.judges import is_grounded
from tracejudge.models.cache import flush_call_cache
from tracejudge.scorers import Correctness, Guidelines, Safety, Trustworthiness, scorer
from tracejudge.testing import ChatServer, Reply

VERDICT = '{"rationale": "fine", "verdict": "yes"}'


pytestmark = pytest.mark.usefixtures("fresh_models")


@scorer
def exact(outputs, expectations) -> bool:
    return outputs == expectations.get("expected_response")


def _judge(server: ChatServer) -> str:
    return f"openai-compatible:/judge?base_url={server.base_url}"


def test_empty_replies_are_a_trust_error_and_are_not_cached():
    state = {"empty": True}

    def reply(request):
        return Reply("" if state["empty"] else "2+2 is 4.\nFinal answer: 4")

    with ChatServer(reply) as server:
        rows = [{"inputs": "What is 2+2?", "outputs": "4"}]
        for preset in ("low", "medium"):
            first = tracejudge.evaluate(
                rows, scorers=[Trustworthiness(model=_judge(server), quality_preset=preset)]
            )
            frame = first.result_df
            assert frame["trustworthiness/value"][0] is None
            assert "Every trust check failed" in frame["trustworthiness/error"][0]
        flush_call_cache()
        state["empty"] = False
        before = server.request_count
        healthy = tracejudge.evaluate(
            rows, scorers=[Trustworthiness(model=_judge(server), quality_preset="medium")]
        )
        assert healthy.result_df["trustworthiness/value"][0] > 0.5
        assert server.request_count > before  # asked again: the empty replies were not kept


def _surrogate_reply(request):
    """A probe's one word, else a written verdict whose rationale holds a lone surrogate."""
    if "one word" in str(request["messages"]):
        return Reply("yes")
    return Reply('{"rationale": "ok \\ud800", "verdict": "yes"}')


def test_lone_surrogates_in_a_row_and_in_a_reply_are_judged_and_cached():
    with ChatServer(_surrogate_reply) as srv:
        text = b"caf\xe9 opening hours?".decode("utf-8", errors="surrogateescape")
        rows = [{"inputs": text, "outputs": "8 am", "expectations": {"expected_response": "8"}}]
        scorers = [Correctness(model=_judge(srv)), Safety(model=_judge(srv))]
        first = tracejudge.evaluate(rows, scorers=scorers).result_df
        assert first["correctness/error"][0] is None and first["safety/error"][0] is None
        flush_call_cache()
        calls = srv.request_count
        tracejudge.evaluate(rows, scorers=scorers)
        assert srv.request_count == calls  # every reply came from the cache


def test_a_missing_ground_truth_is_no_expectation_not_a_failed_run():
    rows = [
        {"inputs": f"q{i}", "outputs": "Paris", "expectations": {"expected_response": "Paris"}}
        for i in range(4)
    ]
    rows[2]["expectations"] = {"expected_response": float("nan")}
    result = tracejudge.evaluate(rows, scorers=[exact])
    assert result.run.status == RunStatus.FINISHED
    assert result.result_df["exact/value"].tolist() == [True, True, False, True]


def test_one_row_that_predict_fn_cannot_take_is_that_rows_error():
    rows = [{"inputs": {"q": "a"}}, {"inputs": "not keyword arguments"}, {"inputs": {"q": "b"}}]
    result = tracejudge.evaluate(rows, predict_fn=lambda q: q.upper(), scorers=[exact])
    assert result.run.status == RunStatus.FINISHED
    assert result.result_df["outputs"].tolist() == ["A", None, "B"]


def test_predict_fn_gets_its_own_copy_and_async_callables_are_awaited():
    class App:
        async def __call__(self, history: list) -> str:
            history.append("the app's own note")
            return f"{len(history)} turns"

    seen = []

    @scorer
    def turns(inputs, outputs) -> bool:
        seen.append((len(inputs["history"]), outputs))
        return True

    rows = [{"inputs": {"history": ["hello"]}}]
    tracejudge.evaluate(rows, predict_fn=App(), scorers=[turns])
    assert seen == [(1, "2 turns")]  # the scorer sees the inputs as recorded
    assert rows[0]["inputs"]["history"] == ["hello"]  # and the caller's data is unchanged


def test_a_trace_given_twice_is_scored_once():
    @tracejudge.trace
    def app(q):
        return q

    for q in ("a", "b"):
        app(q)
    tracejudge.flush()
    traces = tracejudge.search_traces(return_type="list")
    result = tracejudge.evaluate(traces + traces, scorers=[exact])
    per_trace = [
        sum(1 for a in t.info.assessments if isinstance(a, Feedback) and a.run_id == result.run_id)
        for t in tracejudge.search_traces(return_type="list")
    ]
    assert per_trace == [1, 1] and len(result.result_df) == 2


_INTERRUPTED_RUN = """
import sys
import tracejudge
from tracejudge.entities import Feedback
from tracejudge.scorers import scorer

tracejudge.set_tracking_uri(sys.argv[1])
traces = tracejudge.search_traces(order_by=["timestamp ASC"])

@scorer
def length_check(outputs):
    if outputs == "answer 3":
        raise KeyboardInterrupt  # Ctrl-C in the middle of the run
    return Feedback(name="is_short", value=len(outputs) < 50)

try:
    tracejudge.evaluate(traces, scorers=[length_check], max_concurrency=1)
except KeyboardInterrupt:
    sys.exit(0)
sys.exit(1)
"""


def test_a_resumed_run_finds_verdicts_named_unlike_their_scorer(sqlite_tracking):
    """The interrupted run happens in a process of its own (as a Ctrl-C would end it)."""
    import subprocess
    import sys

    @tracejudge.trace
    def app(q):
        return f"answer {q}"

    for i in range(6):
        app(str(i))
    tracejudge.flush()
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_RUN, sqlite_tracking],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TRACEJUDGE_PROGRESS": "0"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = tracejudge.search_runs()
    assert run.status == RunStatus.INTERRUPTED

    @scorer
    def length_check(outputs):
        return Feedback(name="is_short", value=len(outputs) < 50)

    traces = tracejudge.search_traces(order_by=["timestamp ASC"])
    tracejudge.evaluate(traces, scorers=[length_check], run_id=run.run_id)
    path = sqlite_tracking.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        counts = db.execute(
            "SELECT count(*), count(DISTINCT trace_id) FROM assessments "
            "WHERE kind = 'feedback' AND run_id = ?",
            (run.run_id,),
        ).fetchone()
    assert counts == (6, 6)


def test_a_run_whose_side_experiment_cannot_be_made_is_not_left_running():
    import pandas as pd

    tracejudge.set_experiment("e" * 256)  # the longest name; its rows' experiment is longer
    frame = pd.DataFrame({"question": ["q"], "answer": ["Paris"], "truth": ["Paris"]})
    result = tracejudge.evaluate(
        model=None, data=frame, predictions="answer", targets="truth", scorers=[exact]
    )
    assert result.run.status == RunStatus.FINISHED
    assert all(r.status != RunStatus.RUNNING for r in tracejudge.search_runs())


PASS = Feedback(name="ok", value=True)
FAIL = Feedback(name="ok", value=False)


def test_a_scorer_returning_the_same_feedback_object_puts_each_verdict_on_its_trace():
    @tracejudge.trace
    def app(q):
        return q

    for q in ("fine", "bad", "fine too"):
        app(q)
    tracejudge.flush()

    @scorer
    def ok(outputs):
        return FAIL if outputs == "bad" else PASS  # module constants, returned for every row

    result = tracejudge.evaluate(tracejudge.search_traces(return_type="list"), scorers=[ok])
    stored = {
        t.data.outputs: [a.value for a in t.info.assessments if a.run_id == result.run_id]
        for t in tracejudge.search_traces(return_type="list")
    }
    assert stored == {"fine": [True], "bad": [False], "fine too": [True]}


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise TypeError("not enough arguments for format string")


def test_a_scorer_error_whose_message_raises_is_that_rows_error():
    @scorer
    def vendor_check(outputs):
        if outputs == "b":
            raise _Unprintable()
        return True

    rows = [{"inputs": "q", "outputs": o} for o in ("a", "b", "c")]
    result = tracejudge.evaluate(rows, scorers=[vendor_check])
    assert result.run.status == RunStatus.FINISHED
    assert result.result_df["vendor_check/value"].tolist() == [True, None, True]


def test_expectations_of_every_shape_a_dataframe_gives_are_kept():
    import decimal

    import numpy as np

    seen = []

    @scorer
    def look(expectations) -> bool:
        seen.append(expectations)
        return True

    rows = [
        {"inputs": "a", "outputs": "x", "expectations": {"facts": np.array(["Paris", "France"])}},
        {"inputs": "b", "outputs": "x", "expectations": {"facts": ["Paris", float("nan")]}},
        {"inputs": "c", "outputs": "x", "expectations": {"price": decimal.Decimal("1.50")}},
    ]
    result = tracejudge.evaluate(rows, scorers=[look])
    assert result.run.status == RunStatus.FINISHED
    assert seen == [{"facts": ["Paris", "France"]}, {"facts": ["Paris", None]}, {"price": "1.50"}]


def _nan_logprob_reply(request):
    if "one word" in str(request["messages"]):
        return Reply("yes", logprobs=[("yes", float("nan"))])
    return Reply(
        '{"rationale": "harmless", "verdict": "yes"}',
        logprobs=[('{"rationale": "harmless", "verdict": "', -0.01), ("yes", float("nan"))],
    )


def test_a_nan_log_probability_does_not_flip_a_yes_verdict():
    with ChatServer(_nan_logprob_reply) as server:
        result = tracejudge.evaluate(
            [{"inputs": "q", "outputs": "a"}], scorers=[Safety(model=_judge(server))]
        )
    assert result.result_df["safety/value"][0] == "yes"


def test_a_model_that_does_not_exist_stops_the_run_at_the_first_call():
    from tracejudge.errors import ModelNotAvailableError

    with ChatServer(lambda request: Reply("no such model", status=404)) as server:
        with pytest.raises(ModelNotAvailableError, match="does not exist"):
            tracejudge.evaluate(
                [{"inputs": f"q{i}", "outputs": "a"} for i in range(20)],
                scorers=[Safety(model=_judge(server))],
                max_concurrency=1,
            )
        assert server.request_count < 20
    (run,) = tracejudge.search_runs()
    assert run.status == RunStatus.FAILED and "does not exist" in run.failure


def test_an_async_scorer_calling_a_sync_judge_does_not_deadlock_the_run():
    """The sync judge blocks the run's event loop while other scorers' calls to the same model
    hold every concurrency slot; waiting for a slot there would wait for ever."""
    with ChatServer(lambda request: Reply(VERDICT, delay=0.02)) as server:
        judge = f"{_judge(server)}&max_concurrency=2"

        @scorer
        async def grounded(inputs, outputs) -> str:
            return is_grounded(inputs, outputs, "The café opens at 8.", model=judge).value

        rows = [{"inputs": f"question {i}", "outputs": "It opens at 8."} for i in range(30)]
        polite = Guidelines(name="polite", guidelines="Be polite.", model=judge)
        results = []
        run = threading.Thread(
            target=lambda: results.append(
                tracejudge.evaluate(rows, scorers=[grounded, polite], max_concurrency=16)
            ),
            daemon=True,  # a deadlocked run must fail this test, not hang the suite
        )
        run.start()
        run.join(timeout=120)
        assert results, "the run did not finish: deadlocked"
        result = results[0]
        assert result.metrics["grounded/count"] == 30
        assert result.metrics["polite/count"] == 30
        assert result.metrics["grounded/error_count"] == 0


def test_a_key_revoked_mid_run_leaves_no_error_verdicts_behind():
    """The first 401 stops the run; the calls still under way for other rows are cancelled, not
    failed on the closed client and stored as those rows' verdicts (a resume would skip them)."""
    answered = []

    def reply(request):
        answered.append(1)
        if len(answered) > 40:  # the key is revoked
            return Reply(status=401)
        if "one word" in str(request["messages"]):
            return Reply("yes", delay=0.02)
        return Reply(VERDICT, delay=0.02)

    with ChatServer(reply) as server:
        judge = _judge(server)
        scorers = [
            Safety(model=judge),
            Guidelines(name="polite", guidelines="Be polite.", model=judge),
            Correctness(model=judge),
        ]
        rows = [
            {"inputs": f"q{i}", "outputs": "a", "expectations": {"expected_response": "a"}}
            for i in range(40)
        ]
        with pytest.raises(ModelAuthenticationError):
            tracejudge.evaluate(rows, scorers=scorers, max_concurrency=8)
    (run,) = tracejudge.search_runs()
    assert run.status == RunStatus.FAILED
    stored = [
        a
        for t in tracejudge.search_traces(experiment_ids=[run.experiment_id], return_type="list")
        for a in t.info.assessments
        if isinstance(a, Feedback)
    ]
    assert stored, "the verdicts reached before the 401 are kept"
    assert [f.error for f in stored if f.error is not None] == []


def test_an_error_raised_through_run_sync_carries_no_unrelated_context():
    """Its stored stack trace began with "no running event loop", from the loop probe."""
    from tracejudge.models.sync import run_sync

    async def boom():
        raise ValueError("the scorer's own error")

    with pytest.raises(ValueError) as raised:
        run_sync(boom())
    assert raised.value.__context__ is None
