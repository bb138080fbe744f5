"""Claim-by-claim groundedness: sentence splitting, per-claim checks over a real socket, and the
context-support statistics that leave rewording out."""

from __future__ import annotations

import asyncio

import pytest

from tracejudge.judges.builtin import GROUNDED_CLAIM_QUESTION, grounded_spec
from tracejudge.judges.calibration import LogisticCalibration
from tracejudge.judges.claims import MAX_CLAIMS, split_claims, split_sentences
from tracejudge.judges.engine import run_judge
from tracejudge.judges.likelihood import ContextSupport
from tracejudge.models import get_model
from tracejudge.testing import ChatServer, Reply

pytestmark = pytest.mark.usefixtures("fresh_models")


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("One. Two three.", ["One.", "Two three."]),
        (
            "Mr. Smith met Dr. J. Doe in the U.S. on May 3. It was 4.5 km away!",
            ["Mr. Smith met Dr. J. Doe in the U.S. on May 3.", "It was 4.5 km away!"],
        ),
        ('He said "Go." Then he left.', ['He said "Go."', "Then he left."]),
        ("first line\n- second line\n\n* third", ["first line", "second line", "third"]),
        ("no final stop", ["no final stop"]),
        ("Is it? yes it is.", ["Is it? yes it is."]),  # no capital after: not a boundary
        ("", []),
    ],
)
def test_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_claims_merge_fragments_and_cap_the_count():
    assert split_claims("Yes. The café opens at 9:00 on Sundays.") == [
        "Yes. The café opens at 9:00 on Sundays."
    ]
    assert split_claims("It opened in 1889. Sure!") == ["It opened in 1889. Sure!"]
    many = " ".join(f"Sentence number {i} states a fact." for i in range(20))
    claims = split_claims(many)
    assert len(claims) == MAX_CLAIMS
    assert " ".join(claims) == many  # every word is still checked


def test_content_words_and_sentences_of_a_read():
    support = ContextSupport(
        tokens=(
            "It",
            " opened",
            " in",
            " May",
            " 1",
            "8",
            "8",
            "9",
            ".",
            " It",
            " was",
            " big",
            ".",
        ),
        pmi=(0.1, 0.5, -3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.2, 0.1, -0.5, 0.0),
    )
    words = dict(support.words())
    assert words == {"opened": 0.5, "1889": 4.0, "big": -0.5}  # "in" (reworded) left out
    assert support.sentence_means() == pytest.approx([3.6 / 9, -0.2 / 4])
    signals = support.signals()
    assert signals["pmi_min"] == -3.0 and signals["pmi_word_min"] == -0.5
    assert signals["pmi_sentence_min"] == pytest.approx(-0.05)


def _claims_only() -> LogisticCalibration:
    return LogisticCalibration(
        intercept=0.0,
        weights={"claim_min": 1.0},
        logit_features=frozenset({"claim_min"}),
        fallback={"claim_min": 0.5},
        threshold=0.5,
    )


def claim_responder(request) -> Reply:
    """A judge that supports every claim except one that mentions Titan."""
    text = request["messages"][-1]["content"]
    if "<<<CLAIM " in text:
        claim = text.split("<<<CLAIM ", 1)[1].split(">>>", 1)[1].split("<<<END CLAIM", 1)[0]
        return Reply("no" if "Titan" in claim else "yes")
    return Reply('{"rationale": "fine", "verdict": "yes"}')


def test_each_sentence_is_checked_and_the_weakest_decides():
    with ChatServer(claim_responder) as server:
        model = get_model(f"openai-compatible:/judge?base_url={server.base_url}")
        spec = grounded_spec(
            "Tell me about Mars's moons.",
            "Mars has two moons. They are Phobos and Deimos. The larger one is Titan.",
            "Mars has two small moons, Phobos and Deimos.",
            probes=(),
            calibration=_claims_only(),
            read_support=False,
        )
        assert spec.claims_block == "RESPONSE" and not spec.written
        fb = asyncio.run(run_judge(spec, model))
        prompts = [r["messages"][-1]["content"] for r in server.requests]
    assert len(prompts) == 3  # one check per claim, no written verdict
    assert all(GROUNDED_CLAIM_QUESTION in p and p.endswith("yes or no.") for p in prompts)
    shared = prompts[0][: prompts[0].index("<<<CLAIM ")]
    assert all(p.startswith(shared) for p in prompts)  # the data is one shared prefix
    assert "<<<RESPONSE " in shared and "<<<CONTEXT " in shared
    assert fb.value == "no" and fb.metadata["model_calls"] == 3
    claims = fb.metadata["claims"]
    assert [c["support"] for c in claims] == [1.0, 1.0, 0.0]
    assert fb.metadata["signals"]["claim_min"] == 0.0
    assert "Least supported claim: “The larger one is Titan.”" in fb.rationale
    assert "<<<" not in fb.rationale


def test_a_failed_claim_check_loses_only_that_claim():
    def responder(request) -> Reply:
        text = request["messages"][-1]["content"]
        if "Deimos" in text.split("<<<CLAIM ", 1)[-1]:
            return Reply(status=400, body='{"error": {"message": "bad request"}}')
        return Reply("yes")

    with ChatServer(responder) as server:
        model = get_model(f"openai-compatible:/judge?base_url={server.base_url}")
        spec = grounded_spec(
            "Moons?",
            "Mars has two moons. They are Phobos and Deimos.",
            "Mars has two small moons, Phobos and Deimos.",
            probes=(),
            calibration=_claims_only(),
            read_support=False,
        )
        fb = asyncio.run(run_judge(spec, model))
    assert fb.error is None and fb.value == "yes"
    assert [c["support"] for c in fb.metadata["claims"]] == [1.0, None]
    assert fb.metadata["claim_errors"] and "claim 2" in fb.metadata["claim_errors"][0]


def test_every_check_failing_is_a_recorded_error_not_a_verdict():
    with ChatServer(lambda r: Reply(status=400, body='{"error": {"message": "no"}}')) as server:
        model = get_model(f"openai-compatible:/judge?base_url={server.base_url}")
        spec = grounded_spec(
            "Moons?",
            "Mars has two moons.",
            "Mars has two moons.",
            probes=(),
            calibration=_claims_only(),
            read_support=False,
        )
        fb = asyncio.run(run_judge(spec, model))
    assert fb.value is None and fb.error is not None
    assert fb.error.error_code == "JUDGE_NO_SIGNAL"
