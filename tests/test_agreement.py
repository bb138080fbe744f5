"""Judge agreement with people, few-shot alignment, score sorting and the CLI, on a real SQLite file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import tracejudge
from tracejudge.cli import main
from tracejudge.entities import AssessmentSource, Feedback
from tracejudge.errors import InvalidArgumentError
from tracejudge.judges import agreement, make_judge
from tracejudge.judges.agreement import cohen_kappa
from tracejudge.testing import ChatServer, Reply

JUDGE = AssessmentSource("LLM_JUDGE", "local:/default")
HUMAN = AssessmentSource("HUMAN", "ana@example.com")


pytestmark = pytest.mark.usefixtures("fresh_models")


@tracejudge.trace
def app(question: str) -> str:
    return f"answer to {question}"


def make_traces(cases):
    """cases: (judge verdict, judge score, human verdict or None)."""
    tracejudge.set_experiment("agree")
    ids = []
    for i, _ in enumerate(cases):
        app(f"q{i}")
        ids.append(tracejudge.get_last_active_trace_id())
    tracejudge.flush()
    for trace_id, (verdict, score, human) in zip(ids, cases, strict=True):
        judged = tracejudge.log_feedback(
            trace_id,
            "groundedness",
            verdict,
            source=JUDGE,
            rationale=f"judge says {verdict}",
            metadata={"score": score},
        )
        if human == "override":
            flipped = "no" if verdict == "yes" else "yes"
            tracejudge.override_feedback(
                trace_id, judged.assessment_id, flipped, rationale="wrong", source=HUMAN
            )
        elif human is not None:
            tracejudge.log_feedback(trace_id, "groundedness", human, source=HUMAN)
    return ids


CASES = [
    ("yes", 0.9, "yes"),
    ("yes", 0.8, "yes"),
    ("yes", 0.7, "no"),
    ("yes", 0.6, "override"),  # a person overrode the judge: human label "no"
    ("no", 0.2, "no"),
    ("no", 0.1, "no"),
    ("no", 0.4, "yes"),
    ("no", 0.3, None),  # no human label: skipped
]


def test_agreement_counts_kappa_auroc_and_disagreements():
    ids = make_traces(CASES)
    traces = tracejudge.search_traces(experiment_ids=None, return_type="list")
    report = agreement("groundedness", traces)
    assert report.compared == 7 and report.skipped == 1
    assert report.confusion == {
        "judge_yes_human_yes": 2,
        "judge_yes_human_no": 2,
        "judge_no_human_yes": 1,
        "judge_no_human_no": 2,
    }
    assert report.accuracy == pytest.approx(4 / 7)
    # observed 4/7; judge says yes 4/7, people 3/7: expected 4/7*3/7 + 3/7*4/7 = 24/49
    assert report.kappa == pytest.approx((4 / 7 - 24 / 49) / (1 - 24 / 49))
    # human yes scores {0.9, 0.8, 0.4} vs human no {0.7, 0.6, 0.2, 0.1}: 10 of 12 pairs ordered
    assert report.auroc == pytest.approx(10 / 12)
    # the most confident mistake first (0.7 for a "no"); then two at 0.1 from the threshold
    assert report.disagreements[0].trace_id == ids[2]
    assert {d.trace_id for d in report.disagreements[1:]} == {ids[3], ids[6]}
    overridden = next(d for d in report.disagreements if d.trace_id == ids[3])
    assert overridden.human_value == "no" and overridden.human_rationale == "wrong"


def test_kappa_edge_cases():
    assert cohen_kappa([]) is None
    assert cohen_kappa([(True, True), (True, True)]) == 1.0
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_agreement_cli_table_and_json():
    make_traces(CASES)
    runner = CliRunner()
    out = runner.invoke(main, ["judges", "agreement", "groundedness", "--experiment", "agree"])
    assert out.exit_code == 0, out.output
    assert "0.571" in out.output and "judge: yes" in out.output and "Disagreements" in out.output
    as_json = runner.invoke(
        main, ["judges", "agreement", "groundedness", "--experiment", "agree", "--format", "json"]
    )
    data = json.loads(as_json.output)
    assert data["compared"] == 7 and data["confusion"]["judge_no_human_yes"] == 1
    missing = runner.invoke(main, ["judges", "agreement", "tone", "--experiment", "agree"])
    assert missing.exit_code == 0 and "No trace has both" in missing.output
    unknown = runner.invoke(main, ["judges", "agreement", "x", "--experiment", "nope"])
    assert unknown.exit_code != 0 and "No experiment named 'nope'" in unknown.output
    # without --experiment: every experiment (the help's "default: all"), not just the active one
    tracejudge.set_experiment("elsewhere")
    everywhere = runner.invoke(main, ["judges", "agreement", "groundedness", "--format", "json"])
    assert json.loads(everywhere.output)["compared"] == 7


def test_verdicts_sort_by_their_score():
    make_traces([("no", 0.4, None), ("no", 0.05, None), ("yes", 0.95, None), ("yes", 0.6, None)])
    ordered = tracejudge.search_traces(order_by=["feedback.groundedness ASC"], return_type="list")
    scores = [t.search_assessments("groundedness")[0].metadata["score"] for t in ordered]
    assert scores == [0.05, 0.4, 0.6, 0.95]
    low = tracejudge.search_traces(filter_string="feedback.groundedness < 0.5", return_type="list")
    assert len(low) == 2
    assert len(tracejudge.search_traces(filter_string="feedback.groundedness = 'no'")) == 2


def test_align_turns_human_verdicts_into_examples():
    ids = make_traces(CASES)
    traces = tracejudge.search_traces(return_type="list")
    with ChatServer(lambda req: Reply('{"rationale": "r", "result": "yes"}')) as server:
        judge = make_judge(
            "groundedness",
            "Is {{ outputs }} supported, given {{ inputs }}?",
            model=f"openai-compatible:/j?base_url={server.base_url}",
        )
        aligned = judge.align(traces, max_examples=4)
        assert aligned is not judge and judge.examples == () and len(aligned.examples) == 4
        # the judge's three mistakes come first, then a right one
        wrong = {tracejudge.get_trace(i).data.outputs for i in (ids[2], ids[3], ids[6])}
        assert {e["outputs"] for e in aligned.examples[:3]} == wrong
        assert [e["value"] for e in aligned.examples[:3]].count("yes") == 1
        fb = aligned(inputs={"question": "q"}, outputs="an answer")
        assert fb.value == "yes" and isinstance(fb, Feedback)
        prompt = server.requests[0]["messages"][-1]["content"]
        assert "<<<EXAMPLES " in prompt and "Correct result: no" in prompt
        assert prompt.index("<<<EXAMPLES ") < prompt.index("<<<INPUTS ")
        assert "judge by the standard they set" in prompt
    with pytest.raises(InvalidArgumentError, match="human verdict"):
        make_judge("tone", "Is {{ outputs }} polite?").align(traces)


def test_examples_are_checked():
    with pytest.raises(InvalidArgumentError, match="'value'"):
        make_judge("j", "Is {{ outputs }} ok?", examples=[{"outputs": "x"}])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        make_judge("j", "Is {{ outputs }} ok?", examples=[{"inputs": "x", "value": "yes"}])
