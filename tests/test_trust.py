"""The trust score's logic: combination, presets, early stop, explanations, batches.

The model here is a scripted chat server that answers each kind of check with a canned
reply, so the maths can be checked exactly; the real local model is exercised in
test_local_model.py.
"""

from __future__ import annotations

import math

import pytest

from tracejudge.errors import InvalidArgumentError, ModelError
from tracejudge.testing import ChatServer, Reply
from tracejudge.trust import PRESETS, TrustOptions, TrustScorer, token_probability
from tracejudge.trust.combine import combine, explain, mean
from tracejudge.trust.consistency import SampleResult, final_answer
from tracejudge.trust.reflection import ReflectionResult
from tracejudge.trust.similarity import exact_match, normalize_answer, string_similarity
from tracejudge.trust.weights import DEFAULT_WEIGHTS, FITTED_WEIGHTS, default_weights

pytestmark = pytest.mark.usefixtures("fresh_models")


class Script:
    """Canned answers per kind of call, recognised from the prompt text."""

    def __init__(
        self,
        *,
        true_false="True",
        certainty=90,
        critique=9,
        rating=5,
        claims=9,
        sample="Final answer: Paris",
        agree="yes",
        fail_on=None,
        answer="Paris",
    ):
        self.__dict__.update(locals())
        self._samples_given = 0

    def _sample(self):
        """``sample`` itself, or the next of a list of samples in turn."""
        if isinstance(self.sample, str):
            return self.sample
        self._samples_given += 1
        return self.sample[(self._samples_given - 1) % len(self.sample)]

    def __call__(self, request):
        text = " ".join(str(m.get("content")) for m in request["messages"])
        if self.fail_on and self.fail_on in text:
            return Reply(status=400, body='{"error": {"message": "refused"}}')
        if "Reply with exactly one word: True or False" in text:
            return Reply(self.true_false)
        if "certainty from 0" in text:
            return Reply(f'{{"reasoning": "checked the capital", "certainty": {self.certainty}}}')
        if "strongest case" in text:
            return Reply(f'{{"argument": "it could be Lyon", "rating": {self.critique}}}')
        if "5 = certainly correct" in text:
            return Reply(f'{{"reasoning": "fine", "rating": {self.rating}}}')
        if "List the claims" in text:
            return Reply(f'{{"verification": "one claim, true", "rating": {self.claims}}}')
        if "give the same answer" in text:
            return Reply(f'{{"rationale": "compared", "verdict": "{self.agree}"}}')
        if "Final answer: <your answer>" in text:
            sample = self._sample()
            if sample.startswith("CUT:"):  # a sample cut off at max_tokens
                return Reply(sample[4:], finish_reason="length")
            return Reply(sample)
        return Reply(self.answer, logprobs=[("Par", math.log(0.9)), ("is", math.log(0.5))])


@pytest.fixture
def server():
    with ChatServer(Script()) as srv:
        yield srv


def scorer(server, preset="medium", **options):
    return TrustScorer(f"openai-compatible:/m?base_url={server.base_url}", preset, options)


# ------------------------------------------------------------------ maths


def test_combine_renormalises_over_present_parts():
    weights = {
        "self_reflection": 0.5,
        "consistency": 0.3,
        "exact_match": 0.1,
        "token_probability": 0.1,
    }
    assert combine(
        {"self_reflection": 1.0, "consistency": 0.0, "exact_match": None}, weights
    ) == pytest.approx(0.5 / 0.8)
    assert combine({"self_reflection": 0.2}, weights) == pytest.approx(0.2)
    assert combine({"self_reflection": float("nan"), "consistency": 0.4}, weights) == pytest.approx(
        0.4
    )
    assert combine({"self_reflection": 1.7, "consistency": -0.5}, weights) == pytest.approx(
        0.5 / 0.8
    )  # clipped
    assert combine({"self_reflection": None}, weights) is None
    assert (
        combine(
            {"self_reflection": 0.9, "consistency": 0.1}, {"self_reflection": 0, "consistency": 1}
        )
        == 0.1
    )
    assert mean([0.2, None, float("nan"), 0.4]) == pytest.approx(0.3) and mean([]) is None


def test_token_probability_is_the_mean_token_probability():
    from tracejudge.models import TokenLogprob

    assert token_probability(
        [TokenLogprob("a", math.log(0.9)), TokenLogprob("b", math.log(0.5))]
    ) == pytest.approx(0.7)
    assert token_probability(None) is None


def test_answer_helpers():
    assert final_answer("Reasoning...\nFinal answer: **Paris**") == "Paris"
    assert final_answer("first Final answer: a\nthen Final Answer - b") == "b"
    assert final_answer("just text") == "just text"
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match("Paris.", "paris") == 1.0 and exact_match("", "") == 0.0
    assert (
        string_similarity("Paris, France", "paris") > 0.4
        and string_similarity("Paris", "Lyon") < 0.5
    )


# ------------------------------------------------------------- presets


def test_presets_and_their_call_counts():
    assert [PRESETS[p].calls_per_item() for p in ("base", "low", "medium", "high", "best")] == [
        1,
        2,
        7,
        14,
        21,
    ]
    assert (
        TrustOptions(
            num_self_reflections=2, num_consistency_samples=4, similarity_measure="llm"
        ).calls_per_item()
        == 10
    )


@pytest.mark.parametrize(
    ("preset", "options", "match"),
    [
        ("ultra", None, "Unknown quality_preset"),
        ("medium", {"num_samples": 3}, "Unknown trust option"),
        ("medium", {"num_self_reflections": 9}, "num_self_reflections"),
        ("medium", {"num_self_reflections": 0, "num_consistency_samples": 0}, "At least one"),
        ("medium", {"similarity_measure": "nli"}, "similarity_measure"),
        ("medium", {"weights": {"vibes": 1.0}}, "weights"),
        ("medium", {"log": ["everything"]}, "log takes"),
    ],
)
def test_bad_options(server, preset, options, match):
    with pytest.raises(InvalidArgumentError, match=match):
        scorer(server, preset, **(options or {}))


def test_base_preset_makes_one_call(server):
    result = scorer(server, "base").get_trustworthiness_score("Capital of France?", "Paris")
    assert server.request_count == 1
    assert result["trustworthiness_score"] == 1.0  # "True" with no log-probabilities
    assert result["log"]["per_component"]["self_reflection"] == 1.0


# ------------------------------------------------- full score, early stop


MIXED = ["Final answer: Lyon", "Final answer: Paris", "Final answer: Lyon"]
"""Resampled answers that neither all agree with "Paris" nor all contradict it."""


def test_medium_combines_reflections_and_consistency(server):
    server.responder = Script(certainty=80, critique=6, rating=4, sample=MIXED, true_false="True")
    result = scorer(server, "medium", log=["explanation"]).get_trustworthiness_score(
        "Capital of France?", "Paris"
    )
    log = result["log"]
    reflection = (1.0 + 0.8 + 0.6 + 0.75) / 4
    assert log["per_component"]["self_reflection"] == pytest.approx(reflection)
    assert log["per_component"]["exact_match"] == pytest.approx(1 / 3)
    assert log["per_component"]["token_probability"] is None
    consistency = log["per_component"]["consistency"]
    expected = (0.45 * reflection + 0.30 * consistency + 0.05 / 3) / 0.80
    assert result["trustworthiness_score"] == pytest.approx(expected)
    assert server.request_count == 3 + 4 and not log["early_stopped"]
    assert [r["name"] for r in log["reflections"]] == [
        "true_false",
        "certainty",
        "critique",
        "rating",
    ]
    assert sorted(s["answer"] for s in log["samples"]) == ["Lyon", "Lyon", "Paris"]
    assert "Lyon" in log["explanation"]  # a disagreeing alternative answer


def test_unanimous_samples_skip_the_reflections(server):
    server.responder = Script(sample="Final answer: Paris", true_false="False", certainty=0)
    result = scorer(server, "medium").get_trustworthiness_score("Capital of France?", "Paris")
    assert result["log"]["early_stopped"] and server.request_count == 3  # 4 reflections saved
    assert result["log"]["reflections"] == []
    assert result["trustworthiness_score"] == pytest.approx(1.0)
    server.responder = Script(sample="Final answer: Lyon")  # a new question: no cached samples
    result = scorer(server, "medium").get_trustworthiness_score("Capital of the Rhone?", "Paris")
    assert result["log"]["early_stopped"] and result["trustworthiness_score"] == pytest.approx(0.0)


def test_mixed_samples_do_not_stop_early(server):
    server.responder = Script(sample=MIXED)
    result = scorer(server, "medium").get_trustworthiness_score("Capital of France?", "Paris")
    assert not result["log"]["early_stopped"] and len(result["log"]["reflections"]) == 4


def test_early_stop_can_be_switched_off(server):
    server.responder = Script(sample="Final answer: Paris")
    result = scorer(server, "medium", early_stop=False).get_trustworthiness_score("q", "Paris")
    assert not result["log"]["early_stopped"] and server.request_count == 7


def test_samples_cut_off_before_their_answer_are_left_out(server):
    server.responder = Script(critique=3, sample="CUT:First, the capital of France is")
    result = scorer(server, "medium", log=["explanation"]).get_trustworthiness_score(
        "Capital of France?", "Paris"
    )
    log = result["log"]
    assert all(s["answer"] is None and "cut off" in s["error"] for s in log["samples"])
    assert log["per_component"]["consistency"] is None  # no known answer to compare
    assert "alternative answer" not in log["explanation"]


def test_embedding_similarity_without_its_extra_fails_when_built(server):
    import importlib.util

    from tracejudge.errors import ModelNotAvailableError

    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("the [embeddings] extra is installed here")
    with pytest.raises(ModelNotAvailableError, match=r"tracejudge\[embeddings\]"):
        scorer(server, "medium", similarity_measure="embedding")


def test_an_answer_contained_in_the_response_agrees():
    assert string_similarity("The capital of Australia is Canberra.", "Canberra") == 1.0
    assert string_similarity("Canberra", "Sydney") < 0.5
    assert string_similarity("It costs 12 EUR", "2") < 1.0  # whole words only


def test_llm_similarity_asks_an_agreement_judge(server):
    server.responder = Script(critique=3, agree="no")
    result = scorer(server, "high", early_stop=False).get_trustworthiness_score(
        "Capital of France?", "Paris"
    )
    samples = result["log"]["samples"]
    assert len(samples) == 5 and all(s["similarity"] == 0.0 for s in samples)
    # 4 reflections + 5 samples + 5 agreement checks, but the samples all say the same thing,
    # so the 5 identical agreement checks are one call and four cache hits
    assert server.request_count == 4 + 5 + 1


def test_an_unreadable_agreement_reply_is_asked_again_next_time(server):
    """Issue 9.7, the trust score's agreement judge: a reply it cannot read counts 0.5 and is
    not cached, so a rerun against a healthy server asks again."""
    from tracejudge.models import get_model
    from tracejudge.models.sync import run_sync
    from tracejudge.trust.similarity import llm_agreement

    model = get_model(f"openai-compatible:/t?base_url={server.base_url}")
    server.responder = lambda request: Reply("")
    assert run_sync(llm_agreement(model, "q", "Paris", "Paris.")) == 0.5
    server.responder = lambda request: Reply('{"rationale": "same city", "verdict": "yes"}')
    before = server.request_count
    assert run_sync(llm_agreement(model, "q", "Paris", "Paris.")) == 1.0
    assert server.request_count == before + 1


def test_unreadable_reflection_counts_half_and_is_recorded(server):
    server.responder = Script(
        certainty="lots", critique=10, rating=5, true_false="True", sample=MIXED
    )
    result = scorer(server, "medium").get_trustworthiness_score("q", "Paris")
    certainty = next(r for r in result["log"]["reflections"] if r["name"] == "certainty")
    assert certainty["parse_failed"] and certainty["score"] == 0.5


def test_failed_calls_are_left_out_and_all_failing_raises(server):
    server.responder = Script(fail_on="strongest case")  # the critique call fails
    result = scorer(server, "medium", num_consistency_samples=0).get_trustworthiness_score("q", "a")
    critique = next(r for r in result["log"]["reflections"] if r["name"] == "critique")
    assert critique["score"] is None and "ModelBadRequestError" in critique["error"]
    assert result["trustworthiness_score"] == pytest.approx((1.0 + 0.9 + 1.0) / 3)
    server.responder = Script(fail_on="PROPOSED ANSWER")
    with pytest.raises(ModelError, match="Every trust check failed"):
        scorer(server, "low").get_trustworthiness_score("another q", "another a")


def test_system_prompt_is_part_of_what_is_judged(server):
    messages = [
        {"role": "system", "content": "Answer only about geography."},
        {"role": "user", "content": "Capital?"},
    ]
    scorer(server, "base").get_trustworthiness_score(messages, "Paris")
    prompt = server.requests[0]["messages"][1]["content"]
    assert "[system]\nAnswer only about geography." in prompt and "[user]\nCapital?" in prompt


# --------------------------------------------------------- explanations


def test_explanation_names_the_most_negative_reflection_and_an_alternative():
    reflections = [
        ReflectionResult("certainty", 0.6, "somewhat unsure"),
        ReflectionResult("critique", 0.1, "The capital of Australia is Canberra, not Sydney."),
    ]
    samples = [SampleResult("Canberra", 0.1, 0.0), SampleResult("Sydney", 0.9, 1.0)]
    text = explain(0.3, 0.8, reflections, samples, consistency=0.5)
    assert "Canberra, not Sydney" in text and "one alternative answer: Canberra" in text
    assert (
        explain(0.9, 0.8, reflections, samples, 0.9)
        == "Did not find a reason to doubt this response."
    )
    assert "no single check" in explain(0.75, 0.8, [ReflectionResult("certainty", 0.8)], [], None)
    verdict_only = explain(0.6, 0.8, [ReflectionResult("true_false", 0.64)], [], None)
    assert verdict_only == (
        "Its true/false self-check rated this response 0.64 (0 = wrong, 1 = correct) "
        "without giving a reason."
    )


# ---------------------------------------------------------------- batch


def test_batch_keeps_order_and_a_failing_item_does_not_fail_the_batch(server):
    server.responder = Script(fail_on="BROKEN")
    results = scorer(server, "low").get_trustworthiness_score(
        ["q1", "BROKEN q2", "q3"], ["a1", "a2", "a3"]
    )
    assert [r["trustworthiness_score"] is None for r in results] == [False, True, False]
    assert results[1]["log"]["error"]["type"] == "ModelError"
    with pytest.raises(InvalidArgumentError):
        scorer(server, "low").get_trustworthiness_score(["q1", "q2"], ["a1"])


def test_prompt_generates_then_scores_with_token_probability(server):
    result = scorer(server, "low").prompt("Capital of France?")
    assert result["response"] == "Paris"
    assert result["log"]["per_component"]["token_probability"] == pytest.approx(0.7)
    w = DEFAULT_WEIGHTS  # a model with no fitted weights of its own
    expected = (w["self_reflection"] * (1.0 + 0.9) / 2 + w["token_probability"] * 0.7) / (
        w["self_reflection"] + w["token_probability"]
    )
    assert result["trustworthiness_score"] == pytest.approx(expected)
    batch = scorer(server, "low").prompt(["Capital of France?", "Capital of Italy?"])
    assert [r["response"] for r in batch] == ["Paris", "Paris"]


def test_rescoring_is_served_from_the_cache(server):
    s = scorer(server, "medium", early_stop=False)
    first = s.get_trustworthiness_score("q", "a")
    calls = server.request_count
    second = s.get_trustworthiness_score("q", "a")
    assert (
        server.request_count == calls
        and second["trustworthiness_score"] == first["trustworthiness_score"]
    )


def test_a_model_with_fitted_weights_uses_them_and_a_caller_can_override_one(server, monkeypatch):
    model_uri = f"openai-compatible:/m?base_url={server.base_url}"
    monkeypatch.setitem(
        FITTED_WEIGHTS,
        model_uri,
        {"self_reflection": 0.0, "consistency": 0.0, "exact_match": 0.0, "token_probability": 1.0},
    )
    assert default_weights(model_uri)["token_probability"] == 1.0
    assert default_weights("openai:/never-fitted") == DEFAULT_WEIGHTS
    result = scorer(server, "low").prompt("Capital of France?")
    assert result["trustworthiness_score"] == pytest.approx(0.7)  # the token probability alone
    overridden = TrustScorer(model_uri, "low", {"weights": {"self_reflection": 1.0}})
    mixed = overridden.prompt("Capital of France?")
    reflection = mixed["log"]["per_component"]["self_reflection"]
    assert mixed["trustworthiness_score"] == pytest.approx((reflection + 0.7) / 2)
