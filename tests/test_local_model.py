"""The real offline model (llama.cpp, Qwen2.5-Coder-1.5B-Instruct): judges, scorers, the trust
score and the demo, end to end. Slow: deselect with -m "not local_model"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tracejudge
from tracejudge.entities import Document, SpanType
from tracejudge.judges import (
    is_grounded,
    make_judge,
)
from tracejudge.judges.calibrations import groundedness_calibration
from tracejudge.judges.injection import BASE_CASES, INJECTIONS
from tracejudge.scorers import (
    Correctness,
    ExpectationsGuidelines,
    Guidelines,
    RelevanceToQuery,
    RetrievalGroundedness,
    RetrievalRelevance,
    RetrievalSufficiency,
    Safety,
    Trustworthiness,
)
from tracejudge.trust import TrustScorer

# sized for a busy 2-core machine: each judgement is a few model calls of seconds each
pytestmark = [pytest.mark.local_model, pytest.mark.timeout(1200)]
LOCAL = "local:/default"
CONTEXT = [Document("The Eiffel Tower opened to the public on 15 May 1889.", id="d1")]


@pytest.fixture(autouse=True)
def _store(sqlite_tracking, monkeypatch):
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")


def well_formed(fb, name):
    assert fb.name == name
    assert fb.error is None, fb.error
    assert fb.value in ("yes", "no")
    assert isinstance(fb.rationale, str) and fb.rationale
    assert fb.source.source_type == "LLM_JUDGE" and fb.source.source_id == LOCAL
    assert fb.metadata["model"] == LOCAL and fb.metadata["cost_usd"] == 0.0
    # the continuous score behind the verdict, and the threshold that turns it into yes/no
    assert 0.0 <= fb.metadata["score"] <= 1.0
    assert (fb.value == "yes") == (fb.metadata["score"] >= fb.metadata["threshold"]) or (
        fb.metadata["score"] == fb.metadata["threshold"]
    )
    # one-word probes, where the judge asks them, all read
    assert all(p is not None for p in fb.metadata.get("probes", {}).values())
    if name.endswith("groundedness"):  # the local model reads the reply: every weighed signal
        assert "support_error" not in fb.metadata, fb.metadata["support_error"]
        assert set(groundedness_calibration(LOCAL).weights) <= set(fb.metadata["signals"])
    else:  # a written verdict, its P(yes) read from the sampler's log-probabilities
        assert 0.0 <= fb.metadata["p_yes"] <= 1.0


def test_a_custom_judge_rates_on_a_scale():
    rating = make_judge(
        "clarity",
        "Rate from 1 to 5 how clear {{ outputs }} is.",
        model=LOCAL,
        feedback_value_type=int,
    )
    fb = rating(outputs="The Eiffel Tower opened to the public on 15 May 1889.")
    assert fb.error is None and isinstance(fb.value, int) and 1 <= fb.value <= 5


def test_every_builtin_scorer_on_a_traced_rag_row():
    @tracejudge.trace(span_type=SpanType.RETRIEVER)
    def retrieve(question: str) -> list[Document]:
        return [*CONTEXT, Document("Croissants are made with butter.", id="d2")]

    @tracejudge.trace
    def app(question: str) -> str:
        retrieve(question)
        with tracejudge.start_span("llm", span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs(
                {
                    "messages": [
                        {"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": question},
                    ]
                }
            )
            span.set_outputs("It opened on 15 May 1889.")
        return "It opened on 15 May 1889."

    app("When did the Eiffel Tower open to the public?")
    trace_id = tracejudge.get_last_active_trace_id()
    tracejudge.log_expectation(trace_id, "expected_response", "15 May 1889")
    tracejudge.log_expectation(trace_id, "guidelines", ["Answer in one sentence."])
    scorers = [
        RetrievalGroundedness(model=LOCAL),
        RetrievalRelevance(model=LOCAL),
        RetrievalSufficiency(model=LOCAL),
        RelevanceToQuery(model=LOCAL),
        Guidelines(name="brevity", guidelines="Answer briefly.", model=LOCAL),
        ExpectationsGuidelines(model=LOCAL),
        Correctness(model=LOCAL),
        Safety(model=LOCAL),
        Trustworthiness(model=LOCAL, quality_preset="low"),
    ]
    result = tracejudge.evaluate(tracejudge.search_traces(), scorers=scorers)
    row = result.result_df.iloc[0]
    verdicts = (
        "retrieval_groundedness",
        "retrieval_sufficiency",
        "relevance_to_query",
        "brevity",
        "expectations_guidelines",
        "correctness",
        "safety",
    )
    for name in verdicts:
        assert row[f"{name}/error"] is None, (name, row[f"{name}/error"])
        assert row[f"{name}/value"] in ("yes", "no"), name
    # each verdict, as written back onto the trace, is a well-formed judge Feedback
    written = {a.name: a for a in tracejudge.get_trace(trace_id).info.assessments}
    for name in verdicts:
        well_formed(written[name], name)
    assert len(row["retrieval_relevance/value"]) == 2
    assert 0.0 <= row["retrieval_relevance_precision/value"] <= 1.0
    assert 0.0 <= row["trustworthiness/value"] <= 1.0 and row["trustworthiness/rationale"]
    assert result.run.judge_models == [LOCAL] and result.run.usage["calls"] >= 11


def test_trust_scores_a_batch_with_a_failing_item():
    scorer = TrustScorer(LOCAL, "low", {"log": ["explanation"]})
    results = scorer.get_trustworthiness_score(
        ["What is 2 + 2?", "What is 2 + 2?", [{"not": "a message"}]],
        ["2 + 2 = 4.", "2 + 2 = 5.", "anything"],
    )
    right, wrong, failed = results
    for result in (right, wrong):
        assert 0.0 <= result["trustworthiness_score"] <= 1.0
        assert isinstance(result["log"]["explanation"], str) and result["log"]["explanation"]
        assert [r["name"] for r in result["log"]["reflections"]] == ["true_false", "certainty"]
    assert right["trustworthiness_score"] > wrong["trustworthiness_score"]
    assert failed["trustworthiness_score"] is None and "error" in failed["log"]


def test_trust_prompt_generates_and_uses_token_probability():
    result = TrustScorer(LOCAL, "base").prompt("What is the capital of France? Answer in one word.")
    assert "paris" in result["response"].lower()
    assert 0.0 < result["log"]["per_component"]["token_probability"] <= 1.0
    assert 0.0 <= result["trustworthiness_score"] <= 1.0


def test_injection_attempts_are_judged_as_data():
    case = BASE_CASES[3]
    clean = is_grounded(case["request"], case["response"], case["context"], model=LOCAL)
    assert clean.error is None
    for _, payload in INJECTIONS[:3]:
        injected = is_grounded(
            case["request"], case["response"] + payload, case["context"], model=LOCAL
        )
        assert injected.error is None and injected.value in ("yes", "no")
        assert injected.metadata["suspected_injection"] is True


def test_groundedness_ranks_a_hallucination_below_a_supported_answer():
    q = "When did the Eiffel Tower open to the public?"
    good = is_grounded(q, "It opened to the public on 15 May 1889.", CONTEXT, model=LOCAL)
    bad = is_grounded(q, "It opened in 1901, after twelve years of work.", CONTEXT, model=LOCAL)
    assert good.metadata["score"] > bad.metadata["score"] and bad.value == "no"


def test_demo_end_to_end(tmp_path):
    env = {**os.environ, "TRACEJUDGE_PROGRESS": "0", "COLUMNS": "200"}
    env.pop("TRACEJUDGE_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-m", "tracejudge.cli.main", "demo", "--questions", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "tracejudge demo" in out and "FINISHED" in out and "Least trustworthiness first" in out
    assert "Planted bad answers" in out and "retrieval_groundedness" in out
    assert "<<<" not in out  # no rationale quotes a data block's boundary
    # one live answer and the four planted ones, each with its score and its explanation
    assert out.count("trustworthiness = ") >= 10
    assert (
        tmp_path / "tracejudge.db"
    ).is_file()  # the embedded default store, in the current folder


def test_the_local_model_reads_a_reply_and_the_context_raises_a_copied_answer():
    """ChatModel.aread on llama.cpp: each token of a given reply with its log-probability, and
    the context-support signal the groundedness judge uses (a copied fact gains from its
    context; an invented one loses)."""
    import asyncio

    from tracejudge.judges.likelihood import context_support
    from tracejudge.models import get_model

    model = get_model(LOCAL)
    assert model.supports_reading
    context = "The vault code is 7351."
    question = "What is the vault code?"

    async def both():
        blocks = {"REQUEST": question, "CONTEXT": context}
        copied = await context_support(model, blocks, "The code is 7351.")
        invented = await context_support(model, blocks, "The code is 2294.")
        return copied, invented

    copied, invented = asyncio.run(both())
    assert copied is not None and invented is not None
    assert len(copied.pmi) == len(copied.tokens) >= 3
    assert copied.mean > 0  # the context made the copied code likelier
    assert invented.weakest < copied.weakest  # the invented digits lost from it
