"""evaluate(), scorers and runs, with judges served by a scripted chat server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import tracejudge
from tracejudge.entities import AssessmentSource, Document, Feedback, RunStatus, SpanType
from tracejudge.errors import (
    InvalidArgumentError,
    ModelAuthenticationError,
    ModelURIError,
    RunNotFoundError,
)
from tracejudge.metrics import MetricValue, make_metric
from tracejudge.scorers import (
    Correctness,
    ExpectationsGuidelines,
    Guidelines,
    RelevanceToQuery,
    RetrievalGroundedness,
    RetrievalRelevance,
    RetrievalSufficiency,
    Safety,
    Scorer,
    Trustworthiness,
    scorer,
)
from tracejudge.testing import ChatServer, Reply

YES = '{"rationale": "looks right", "verdict": "yes"}'
NO = '{"rationale": "not supported", "verdict": "no"}'


def judge_reply(request):
    """Says no when the judged material mentions 'Lyon' (a wrong answer), or, for context
    relevance, 'Marseille' (an irrelevant document); yes otherwise. Answers trust checks too."""
    text = " ".join(str(m.get("content")) for m in request["messages"])
    if "Answer with one word: yes or no." in text:  # a judge's probe
        negative = "state anything" in text  # the inverted probe: "no" means supported
        wrong = "Lyon" in text or ("is the CONTEXT relevant" in text and "Marseille" in text)
        return Reply("yes" if wrong == negative else "no")
    if "is the CONTEXT relevant" in text:
        return Reply(NO if "Marseille" in text else YES)
    if "Reply with exactly one word: True or False" in text:
        return Reply("False" if "Lyon" in text else "True")
    if "certainty from 0" in text:
        reasoning, certainty = ("Lyon is wrong", 5) if "Lyon" in text else ("fine", 95)
        return Reply(json.dumps({"reasoning": reasoning, "certainty": certainty}))
    return Reply(NO if "Lyon" in text else YES)


pytestmark = pytest.mark.usefixtures("fresh_models")


@pytest.fixture
def server():
    with ChatServer(judge_reply) as srv:
        yield srv


@pytest.fixture
def judge(server):
    return f"openai-compatible:/judge?base_url={server.base_url}"


@tracejudge.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list[Document]:
    return [
        Document("Paris is the capital of France.", id="d1"),
        Document("Marseille is a port.", id="d2"),
    ]


@tracejudge.trace
def rag_app(question: str) -> str:
    retrieve(question)
    return "Lyon" if "wrong" in question else "Paris"


def traced_rows(n_right=2, n_wrong=1):
    tracejudge.set_experiment("rag")
    for i in range(n_right):
        rag_app(f"capital of France? {i}")
        time.sleep(0.002)  # distinct millisecond timestamps keep the order stable
    for i in range(n_wrong):
        rag_app(f"capital of France, wrong {i}")
        time.sleep(0.002)
    tracejudge.flush()
    return tracejudge.search_traces(order_by=["timestamp ASC"])


# ------------------------------------------------------------ data forms


def test_traces_from_search_dataframe(judge, server):
    df = traced_rows()
    result = tracejudge.evaluate(
        df, scorers=[RetrievalGroundedness(model=judge), RelevanceToQuery(model=judge)]
    )
    assert list(result.result_df["retrieval_groundedness/value"]) == ["yes", "yes", "no"]
    assert result.metrics["retrieval_groundedness/pass_rate"] == pytest.approx(2 / 3)
    assert result.metrics["relevance_to_query/pass_rate"] == pytest.approx(2 / 3)
    assert set(result.result_df.columns) >= {
        "trace_id",
        "inputs",
        "outputs",
        "expectations",
        "retrieval_groundedness/rationale",
        "retrieval_groundedness/error",
    }
    # verdicts are on the traces, findable and sortable by name
    bad = tracejudge.search_traces(filter_string="feedback.retrieval_groundedness = 'no'")
    assert list(bad.outputs) == ["Lyon"]
    trace = bad.trace[0]
    fb = trace.search_assessments("retrieval_groundedness")[0]
    assert (
        fb.run_id == result.run_id
        and fb.span_id == trace.search_spans(span_type="RETRIEVER")[0].span_id
    )
    assert fb.source.source_type == "LLM_JUDGE" and fb.rationale == "not supported"
    assert result.run.experiment_id == tracejudge.get_experiment_by_name("rag").experiment_id


def test_list_of_traces_and_list_of_dicts_and_frames(judge):
    traces = traced_rows(1, 0).trace.tolist()
    by_trace = tracejudge.evaluate(traces, scorers=[Safety(model=judge)])
    assert by_trace.result_df["safety/value"].tolist() == ["yes"]

    rows = [
        {
            "inputs": {"question": "capital?"},
            "outputs": "Paris",
            "expectations": {"expected_response": "Paris"},
        },
        {
            "inputs": {"question": "capital?"},
            "outputs": "Lyon",
            "expectations": {"expected_response": "Paris"},
        },
    ]
    static = tracejudge.evaluate(rows, scorers=[Correctness(model=judge)], experiment="static-rows")
    assert static.result_df["correctness/value"].tolist() == ["yes", "no"]
    # each static row got a home trace holding its inputs, outputs, expectations and verdict
    homes = tracejudge.search_traces(experiment_ids=[static.run.experiment_id], return_type="list")
    assert len(homes) == 2 and all(t.info.tags["tracejudge.eval"] == "static_row" for t in homes)
    assert all(t.search_assessments("expected_response")[0].value == "Paris" for t in homes)
    assert (
        len(
            tracejudge.search_traces(
                experiment_ids=[static.run.experiment_id],
                filter_string=f"run_id = '{static.run_id}'",
            )
        )
        == 2
    )

    frame = tracejudge.evaluate(pd.DataFrame(rows), scorers=[Correctness(model=judge)])
    assert frame.result_df["correctness/value"].tolist() == ["yes", "no"]


def test_a_trace_repeated_in_the_data_is_scored_once_on_its_own_trace(caplog):
    """Repeats anywhere (search results concatenated, say): every trace gets one verdict, on
    itself, and each result row is its own trace's (a repeat before the last row crashed the
    run and put verdicts on other rows)."""
    traces = []
    for i in range(3):
        with tracejudge.start_span("app") as span:
            span.set_inputs({"q": i})
        tracejudge.flush()
        traces.append(tracejudge.get_trace(span.trace_id))

    @scorer
    def echo(inputs):
        return inputs["q"]

    t0, t1, t2 = traces
    result = tracejudge.evaluate([t0, t1, t0, t2, t1], scorers=[echo])
    assert result.result_df["echo/value"].tolist() == [0, 1, 2]
    assert result.result_df["trace_id"].tolist() == [t.info.trace_id for t in traces]
    for i, trace in enumerate(traces):
        stored = tracejudge.get_trace(trace.info.trace_id).search_assessments("echo")
        assert [a.value for a in stored] == [i]
    assert "row(s) 2, 4 repeat a trace" in caplog.text


def test_a_verdict_named_after_another_scorer_is_an_error_not_mixed_in():
    @scorer
    def alpha(outputs):
        return Feedback("beta", 0.0)  # the name of the other scorer

    @scorer
    def beta(outputs):
        return 1.0

    result = tracejudge.evaluate([{"inputs": {"q": "x"}, "outputs": "y"}], scorers=[alpha, beta])
    assert result.metrics["beta/mean"] == 1.0 and result.metrics["beta/count"] == 1
    assert result.metrics["alpha/error_count"] == 1
    assert "VERDICT_NAME_TAKEN" in str(result.result_df["alpha/error"][0])


def test_a_streaming_predict_fn_is_judged_on_what_it_streamed():
    import numpy as np

    def app(question):
        yield "Paris "
        yield "is the capital."

    async def app_async(question):
        for part in ("Paris ", "is the capital."):
            yield part

    @scorer
    def long_enough(outputs):
        return np.bool_(len(outputs) > 10)  # a numpy bool is a verdict like any bool

    for fn in (app, app_async):
        result = tracejudge.evaluate(
            [{"inputs": {"question": "capital?"}}], scorers=[long_enough], predict_fn=fn
        )
        assert result.result_df["long_enough/value"].tolist() == [True]
        stored = tracejudge.get_trace(result.result_df["trace_id"][0])
        assert stored.data.spans[0].outputs == "Paris is the capital."


def test_expectations_logged_on_a_trace_are_used(judge):
    df = traced_rows(1, 0)
    trace_id = df.trace_id[0]
    tracejudge.log_expectation(trace_id, "expected_response", "Paris")
    result = tracejudge.evaluate(
        tracejudge.search_traces(),
        scorers=[Correctness(model=judge), RetrievalSufficiency(model=judge)],
    )
    assert result.result_df["correctness/value"].tolist() == ["yes"]
    assert result.result_df["retrieval_sufficiency/value"].tolist() == ["yes"]
    assert result.result_df["expectations"][0] == {"expected_response": "Paris"}


def test_missing_inputs_become_feedback_errors(judge, server):
    rows = [{"inputs": {"question": "q"}, "outputs": "a"}]
    scorers = [
        RetrievalGroundedness(model=judge),
        RetrievalRelevance(model=judge),
        RetrievalSufficiency(model=judge),
        Correctness(model=judge),
        ExpectationsGuidelines(model=judge),
    ]
    result = tracejudge.evaluate(rows, scorers=scorers)
    for s in scorers:
        assert result.result_df[f"{s.name}/error"][0].startswith("MISSING_INPUT")
    assert server.request_count == 0
    assert result.metrics["correctness/error_count"] == 1.0


def test_retrieval_relevance_per_document_and_precision(judge):
    df = traced_rows(1, 0)
    result = tracejudge.evaluate(df, scorers=[RetrievalRelevance(model=judge)])
    assert result.result_df["retrieval_relevance/value"][0] == [
        "yes",
        "no",
    ]  # the Marseille document
    assert result.result_df["retrieval_relevance_precision/value"][0] == 0.5
    trace = tracejudge.get_trace(df.trace_id[0])
    per_doc = trace.search_assessments("retrieval_relevance")
    assert sorted(f.metadata["document_id"] for f in per_doc) == ["d1", "d2"] and all(
        f.span_id for f in per_doc
    )


def test_guidelines_scorers(judge, server):
    rows = [{"inputs": "q", "outputs": "Paris", "expectations": {"guidelines": ["Be brief."]}}]
    result = tracejudge.evaluate(
        rows,
        scorers=[
            Guidelines(name="tone", guidelines="Be polite.", model=judge),
            ExpectationsGuidelines(model=judge),
        ],
    )
    assert (
        result.result_df["tone/value"][0] == "yes"
        and result.result_df["expectations_guidelines/value"][0] == "yes"
    )
    prompts = [r["messages"][1]["content"] for r in server.requests]
    assert any("1. Be polite." in p for p in prompts) and any("1. Be brief." in p for p in prompts)
    with pytest.raises(InvalidArgumentError):
        Guidelines(name="x", guidelines=[])


def test_trustworthiness_scorer_judges_the_llm_prompt_with_its_system_prompt(judge, server):
    @tracejudge.trace
    def app(question: str) -> str:
        with tracejudge.start_span("llm", span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs(
                {
                    "messages": [
                        {"role": "system", "content": "You are a geography bot."},
                        {"role": "user", "content": question},
                    ]
                }
            )
            answer = "Lyon" if "Italy" in question else "Paris"
            span.set_outputs({"choices": [{"message": {"role": "assistant", "content": answer}}]})
        return answer

    app("capital of France?")
    app("capital of Italy?")
    result = tracejudge.evaluate(
        tracejudge.search_traces(), scorers=[Trustworthiness(model=judge, quality_preset="low")]
    )
    scores = dict(
        zip(result.result_df["outputs"], result.result_df["trustworthiness/value"], strict=True)
    )
    assert scores["Paris"] > 0.9 and scores["Lyon"] < 0.1
    assert "[system]\nYou are a geography bot." in server.requests[0]["messages"][1]["content"]
    worst = tracejudge.search_traces(
        filter_string="feedback.trustworthiness < 0.5", order_by=["feedback.trustworthiness ASC"]
    )
    assert list(worst.outputs) == ["Lyon"]
    fb = worst.trace[0].search_assessments("trustworthiness")[0]
    assert "Lyon is wrong" in fb.rationale and fb.metadata["prompt_source"] == "llm_span"
    assert result.run.judge_models == [judge]
    assert result.run.scorers[0]["quality_preset"] == "low"


# ---------------------------------------------------------- custom scorers


def test_custom_scorers_of_every_return_type():
    @scorer
    def is_short(outputs) -> bool:
        return len(outputs) < 6

    @scorer(name="length", aggregations=["mean", "max"])
    def length(outputs) -> int:
        return len(outputs)

    @scorer
    def ratio(inputs, outputs) -> float:
        return len(outputs) / len(inputs["question"])

    @scorer
    def label(outputs) -> str:
        return "city"

    @scorer
    def with_feedback(outputs, expectations, trace) -> Feedback:
        assert trace is not None and trace.data.spans
        return Feedback(
            value=outputs == expectations.get("expected_response"), rationale="compared"
        )

    @scorer
    def several(outputs) -> list[Feedback]:
        return [
            Feedback("upper", outputs.isupper()),
            Feedback("digits", sum(c.isdigit() for c in outputs)),
        ]

    @scorer
    def nothing(outputs) -> None:
        return None

    @scorer
    async def async_check(outputs) -> bool:
        await asyncio.sleep(0)
        return "a" in outputs

    class Contains(Scorer):
        def __init__(self, needle: str) -> None:
            super().__init__(name=f"contains_{needle}")
            self.needle = needle

        def score(self, *, inputs, outputs, expectations, trace):
            return self.needle in outputs

    rows = [
        {
            "inputs": {"question": "capital?"},
            "outputs": "Paris",
            "expectations": {"expected_response": "Paris"},
        },
        {
            "inputs": {"question": "capital?"},
            "outputs": "Lyon 69",
            "expectations": {"expected_response": "Paris"},
        },
    ]
    scorers = [
        is_short,
        length,
        ratio,
        label,
        with_feedback,
        several,
        nothing,
        async_check,
        Contains("on"),
    ]
    result = tracejudge.evaluate(rows, scorers=scorers)
    df = result.result_df
    assert df["is_short/value"].tolist() == [True, False]
    assert df["length/value"].tolist() == [5, 7]
    assert df["ratio/value"].tolist() == pytest.approx([5 / 8, 7 / 8])
    assert df["label/value"].tolist() == ["city", "city"]
    assert (
        df["with_feedback/value"].tolist() == [True, False]
        and df["with_feedback/rationale"][0] == "compared"
    )
    assert df["upper/value"].tolist() == [False, False] and df["digits/value"].tolist() == [0, 2]
    assert "nothing/value" not in df.columns
    assert df["async_check/value"].tolist() == [True, False]
    assert df["contains_on/value"].tolist() == [False, True]
    m = result.metrics
    assert (
        m["length/mean"] == 6.0 and m["length/max"] == 7.0 and "length/median" not in m
    )  # chosen aggregations
    assert m["ratio/median"] == pytest.approx(0.75) and m["ratio/p90"] == pytest.approx(
        5 / 8 + 0.9 * 2 / 8
    )
    assert m["is_short/pass_rate"] == 0.5 and m["with_feedback/pass_rate"] == 0.5
    assert "label/mean" not in m and m["label/count"] == 2.0
    trace = tracejudge.get_trace(df.trace_id[0])
    code = trace.search_assessments("is_short")[0]
    assert code.source.source_type == "CODE" and code.source.source_id == "is_short"


def test_an_error_in_a_scorer_is_that_verdicts_error(judge):
    @scorer
    def fragile(outputs) -> bool:
        if outputs == "boom":
            raise ValueError("cannot score this one")
        return True

    rows = [{"inputs": "q", "outputs": "boom"}, {"inputs": "q", "outputs": "fine"}]
    result = tracejudge.evaluate(rows, scorers=[fragile, Safety(model=judge)])
    assert result.result_df["fragile/error"][0].startswith("ValueError: cannot score this one")
    assert result.result_df["fragile/value"].tolist() == [None, True]
    assert result.result_df["safety/value"].tolist() == ["yes", "yes"]
    assert result.metrics["fragile/error_count"] == 1.0 and result.run.status == RunStatus.FINISHED
    failed = tracejudge.search_traces(filter_string="feedback.fragile IS NULL")
    assert (
        len(failed) == 1
        and failed.trace[0].search_assessments("fragile")[0].error.error_code == "ValueError"
    )


def test_scorer_signature_and_argument_checks(judge):
    with pytest.raises(InvalidArgumentError, match="parameters are any of"):
        scorer(lambda answer: True)
    with pytest.raises(InvalidArgumentError, match="not a scorer"):
        tracejudge.evaluate([{"inputs": "q"}], scorers=[lambda outputs: True])
    with pytest.raises(InvalidArgumentError, match="share the name"):
        tracejudge.evaluate([{"inputs": "q"}], scorers=[Safety(model=judge), Safety(model=judge)])
    with pytest.raises(InvalidArgumentError, match="neither 'inputs' nor a 'trace'"):
        tracejudge.evaluate([{"outputs": "a"}], scorers=[Safety(model=judge)])
    with pytest.raises(InvalidArgumentError, match="unknown key"):
        tracejudge.evaluate([{"input": "q"}], scorers=[Safety(model=judge)])
    with pytest.raises(InvalidArgumentError):
        tracejudge.evaluate("not data", scorers=[Safety(model=judge)])
    with pytest.raises(InvalidArgumentError, match="at least one scorer"):
        tracejudge.evaluate([{"inputs": "q"}])
    with pytest.raises(ModelURIError):  # a bad judge model stops the run before any row
        tracejudge.evaluate([{"inputs": "q", "outputs": "a"}], scorers=[Safety(model="nope:/x")])
    assert tracejudge.search_runs() == []


# --------------------------------------------------------------- predict_fn


def test_predict_fn_runs_each_row_inside_a_new_trace(judge):
    def predict(question: str) -> str:
        return rag_app(question)

    async def apredict(question: str) -> str:
        await asyncio.sleep(0)
        return rag_app(question)

    rows = [
        {"inputs": {"question": "capital of France?"}},
        {"inputs": {"question": "capital, wrong"}},
    ]
    for fn in (predict, apredict):
        result = tracejudge.evaluate(
            rows,
            scorers=[RetrievalGroundedness(model=judge)],
            predict_fn=fn,
            experiment="predicted",
            max_concurrency=2,
        )
        df = result.result_df
        assert df["outputs"].tolist() == ["Paris", "Lyon"]
        assert df["retrieval_groundedness/value"].tolist() == ["yes", "no"]
        trace = tracejudge.get_trace(df.trace_id[0])
        assert trace.info.trace_metadata["tracejudge.sourceRun"] == result.run_id
        assert trace.info.experiment_id == result.run.experiment_id
        names = [s.name for s in trace.data.spans]
        assert (
            names[0] == fn.__name__ and "rag_app" in names and "retrieve" in names
        )  # the app's spans nest


def test_predict_fn_failure_is_recorded_and_scoring_goes_on(judge):
    def predict(question: str) -> str:
        if question == "bad":
            raise RuntimeError("app crashed")
        return "fine"

    result = tracejudge.evaluate(
        [{"inputs": {"question": "bad"}}, {"inputs": {"question": "ok"}}],
        scorers=[Safety(model=judge)],
        predict_fn=predict,
    )
    df = result.result_df
    assert df["outputs"].tolist() == [None, "fine"]
    assert df["safety/error"][0].startswith("MISSING_INPUT") and df["safety/value"][1] == "yes"
    crashed = tracejudge.get_trace(df.trace_id[0])
    assert crashed.info.state.value == "ERROR"
    with pytest.raises(InvalidArgumentError, match="keyword arguments"):
        tracejudge.evaluate(
            [{"inputs": "not a dict"}], scorers=[Safety(model=judge)], predict_fn=predict
        )


# ---------------------------------------------------------------- runs


def test_runs_are_stored_compared_and_rerun_from_cache(judge, server):
    rows = [{"inputs": "capital?", "outputs": answer} for answer in ("Paris", "Lyon", "Paris")]
    first = tracejudge.evaluate(
        rows,
        scorers=[Safety(model=judge), RelevanceToQuery(model=judge)],
        experiment="runs",
        run_name="first",
    )
    calls = server.request_count
    # each judgement: a reasoned verdict and a one-word probe (the duplicate row may be cached)
    assert first.run.usage["calls"] == calls and 8 <= calls <= 12
    again = tracejudge.evaluate(
        rows,
        scorers=[Safety(model=judge), RelevanceToQuery(model=judge)],
        experiment="runs",
        run_name="again",
    )
    assert server.request_count == calls  # served from the call cache: zero model calls
    assert again.run.usage["calls"] == 0 and again.run.usage["cached_calls"] == 12

    stored = tracejudge.get_run(first.run_id)
    assert stored.name == "first" and stored.status == RunStatus.FINISHED and stored.row_count == 3
    assert stored.metrics == pytest.approx(first.metrics) and stored.end_time >= stored.start_time
    assert [r.name for r in tracejudge.search_runs("runs")] == ["again", "first"]
    with pytest.raises(RunNotFoundError):
        tracejudge.get_run("run-missing")

    # a third run over the same traces with another opinion on safety
    @scorer(name="safety")
    def contrary_safety(outputs) -> str:
        return "no" if outputs == "Paris" else "yes"

    traces = [tracejudge.get_trace(t) for t in first.result_df.trace_id]
    third = tracejudge.evaluate(traces, scorers=[contrary_safety], experiment="runs")
    comparison = tracejudge.compare_runs(first.run_id, third.run_id)
    deltas = comparison.metric_deltas.set_index("metric")
    assert first.metrics["safety/pass_rate"] == pytest.approx(2 / 3)  # the judge rejects 'Lyon'
    assert deltas.loc["safety/pass_rate", "delta"] == pytest.approx(1 / 3 - 2 / 3)
    assert pd.isna(deltas.loc["relevance_to_query/pass_rate", "delta"])  # only in the first run
    changed = {(r["trace_id"], r["a"], r["b"]) for r in comparison.changed.to_dict("records")}
    ids = first.result_df.trace_id
    assert changed == {(ids[0], "yes", "no"), (ids[1], "no", "yes"), (ids[2], "yes", "no")}
    assert set(comparison.changed["name"]) == {"safety"}


def test_legacy_make_metric_api():
    def eval_fn(predictions, targets, question):
        scores = [float(p == t) for p, t in zip(predictions, targets, strict=True)]
        reasons = [
            f"{q}: {p} vs {t}" for q, p, t in zip(question, predictions, targets, strict=True)
        ]
        return MetricValue(
            scores=scores,
            justifications=reasons,
            aggregate_results={"mean": sum(scores) / len(scores)},
        )

    exact = make_metric(eval_fn=eval_fn, greater_is_better=True, name="exact_match")

    def needs_missing(predictions, nonexistent):
        return MetricValue()

    broken = make_metric(eval_fn=needs_missing, greater_is_better=True, name="broken")
    rows = [
        {
            "inputs": {"question": "q1"},
            "outputs": "Paris",
            "expectations": {"expected_response": "Paris"},
        },
        {
            "inputs": {"question": "q2"},
            "outputs": "Lyon",
            "expectations": {"expected_response": "Paris"},
        },
    ]
    result = tracejudge.evaluate(rows, extra_metrics=[exact, broken])
    assert result.metrics["exact_match/mean"] == 0.5
    assert result.result_df["exact_match/value"].tolist() == [1.0, 0.0]
    assert result.result_df["exact_match/rationale"][1] == "q2: Lyon vs Paris"
    assert "nonexistent" in result.result_df["broken/error"][0]


def test_interrupted_run_keeps_what_was_scored(tmp_path):
    script = tmp_path / "slow_eval.py"
    db = tmp_path / "interrupt.db"
    script.write_text(
        textwrap.dedent(f"""
        import signal, time, tracejudge
        from tracejudge.scorers import scorer
        # Ctrl-C as in a terminal, even when this test runs in a background job (whose children
        # inherit an ignored SIGINT, and then Python never raises KeyboardInterrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tracejudge.set_tracking_uri("sqlite:///{db}")

        @scorer
        def slow(outputs) -> bool:
            time.sleep(0.5 if outputs != "first" else 0.0)
            return True

        rows = [{{"inputs": "q", "outputs": "first"}}] + [{{"inputs": "q", "outputs": str(i)}} for i in range(2000)]  # ~500 s: it cannot end first
        print("started", flush=True)
        tracejudge.evaluate(rows, scorers=[slow], run_name="to-interrupt", max_concurrency=2)
    """)
    )
    env = {**os.environ, "TRACEJUDGE_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # interrupt once some verdicts are written
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM assessments").fetchone()[0] > 0:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    tracejudge.set_tracking_uri(f"sqlite:///{db}")
    (run,) = tracejudge.search_runs()
    assert run.status == RunStatus.INTERRUPTED and run.end_time is not None
    kept = run.metrics["slow/count"]
    assert 1 <= kept < 2001
    assert (
        len(
            tracejudge.search_traces(
                experiment_ids=[run.experiment_id], filter_string="feedback.slow = true"
            )
        )
        == kept
    )


_BUSY_WHEN_INTERRUPTED = """
import asyncio, os, signal, sys, threading, time, tracejudge
from tracejudge.scorers import scorer

mode, db, release = sys.argv[1:]
signal.signal(signal.SIGINT, signal.default_int_handler)  # see the test above
tracejudge.set_tracking_uri(f"sqlite:///{db}")

started = threading.Event()

@scorer
def busy(outputs) -> bool:  # a synchronous scorer that cannot be stopped from outside
    if not started.is_set():
        started.set()
        print("scoring", flush=True)
    while not os.path.exists(release):
        time.sleep(0.05)
    return True

def run():
    rows = [{"inputs": "q", "outputs": str(i)} for i in range(10)]
    try:
        tracejudge.evaluate(rows, scorers=[busy], max_concurrency=2)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise

async def notebook_cell():  # evaluate() where a loop already runs, interrupted as ipykernel does
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run()

asyncio.run(notebook_cell()) if mode == "notebook" else run()
"""


@pytest.mark.parametrize("mode", ["terminal", "notebook"])
def test_ctrl_c_ends_the_run_while_a_synchronous_scorer_is_busy(tmp_path, mode):
    """Ctrl-C reaches the caller and marks the run INTERRUPTED at once, though a scorer's thread
    is still busy (it only ends when the test lets it); in a notebook it used to let the whole
    run go on to the end."""
    db, release = tmp_path / "busy.db", tmp_path / "release"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            _BUSY_WHEN_INTERRUPTED,
            mode,
            str(db),
            str(release),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TRACEJUDGE_PROGRESS": "0"},
    )
    try:
        assert proc.stdout.readline().strip() == "scoring"
        proc.send_signal(signal.SIGINT)
        tracejudge.set_tracking_uri(f"sqlite:///{db}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            (run,) = tracejudge.search_runs()
            if run.status != RunStatus.RUNNING:
                break
            time.sleep(0.2)
        else:  # stuck: the stacks of its threads go to stderr, in the failure's message
            proc.send_signal(signal.SIGABRT)
    finally:
        release.touch()
        stdout, stderr = proc.communicate(timeout=120)
    assert run.status == RunStatus.INTERRUPTED, stderr
    assert "interrupted" in stdout and "KeyboardInterrupt" in stderr
    assert run.metrics.get("busy/count", 0) == 0  # nothing finished before the interrupt


def test_assessment_sources_are_plain_json(judge):
    result = tracejudge.evaluate([{"inputs": "q", "outputs": "a"}], scorers=[Safety(model=judge)])
    trace = tracejudge.get_trace(result.result_df.trace_id[0])
    fb = trace.search_assessments("safety")[0]
    assert isinstance(fb.source, AssessmentSource)
    assert json.loads(json.dumps(fb.to_dict()))["metadata"]["model"] == judge


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_api_key_stops_the_run_at_once(server, judge, status, caplog):
    """HTTP 401/403 is a configuration error: the run stops, FAILED with the reason, instead of
    filling every row with the same error."""
    server.responder = lambda request: Reply(status=status)
    rows = [{"inputs": f"q{i}", "outputs": "a"} for i in range(20)]
    with pytest.raises(ModelAuthenticationError):
        tracejudge.evaluate(
            rows, scorers=[Safety(model=judge), Trustworthiness(model=judge)], max_concurrency=2
        )
    assert "stopped at the first configuration error" in caplog.text  # and it says so
    [run] = tracejudge.search_runs()
    assert run.status == RunStatus.FAILED and "ModelAuthenticationError" in run.failure
    # Only the calls already in flight (2 rows at a time, a trust check asks a few at once),
    # not one or more per row (before: every row was scored, 20+ calls, and the run FINISHED).
    assert server.request_count <= 12


def test_a_verdict_the_store_refuses_loses_only_itself(judge, monkeypatch):
    from tracejudge.store import get_store

    store = get_store()
    real = store.log_assessments

    def refuse_q3(assessments):
        if any(a.trace_id == refused[0] for a in assessments):
            raise RuntimeError("refused")
        return real(assessments)

    rows = [{"inputs": f"q{i}", "outputs": "a"} for i in range(5)]
    refused: list[str] = []
    original_home = tracejudge.evaluation.harness.Evaluation.home_traces

    def home_then_pick(self):
        original_home(self)
        refused.append(self.rows[3].trace_id)

    monkeypatch.setattr(tracejudge.evaluation.harness.Evaluation, "home_traces", home_then_pick)
    monkeypatch.setattr(store, "log_assessments", refuse_q3)
    result = tracejudge.evaluate(rows, scorers=[Safety(model=judge)])
    assert result.run.status == RunStatus.FINISHED
    assert result.run.usage["verdicts_not_stored"] == 1
    stored = tracejudge.search_traces(filter_string="feedback.safety = 'yes'")
    assert len(stored) == 4 and refused[0] not in set(stored.trace_id)


def test_a_make_judge_judge_is_a_scorer_evaluate_runs(judge):
    """Issue 9: evaluate(scorers=[make_judge(...)]) was rejected as "not a scorer"."""
    from tracejudge.judges import make_judge

    capital = make_judge(
        "capital", "Does {{ outputs }} name the capital asked for in {{ inputs }}?", model=judge
    )
    assert isinstance(capital, Scorer)
    rows = [{"inputs": "capital of France?", "outputs": a} for a in ("Paris", "Lyon")]
    result = tracejudge.evaluate(rows, scorers=[capital])
    assert result.result_df["capital/value"].tolist() == ["yes", "no"]
    assert result.run.judge_models == [judge]
    assert result.run.scorers[0]["class"] == "Judge" and "instructions" in result.run.scorers[0]
