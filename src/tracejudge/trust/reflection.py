"""Self-reflection: the model is asked, in several different ways, whether a response is right.

Each verifier prompt yields a score in [0, 1]. A reply that cannot be read scores 0.5 and is
recorded; a call that fails is left out (and recorded). Where the model returns
log-probabilities, the True/False verifier reads P(True) at the verdict token and the 1-5
rating is the expected rating, instead of the single sampled answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracejudge.errors import MODEL_CONFIGURATION_ERRORS, ModelError
from tracejudge.judges.formatting import DATA_RULES, delimit, strip_block_markers
from tracejudge.judges.parsing import parse_json_object
from tracejudge.models import ChatModel, ChatResult, TokenLogprob

PARSE_FAILURE_SCORE = 0.5
SYSTEM = (
    "You verify answers given by an AI assistant that is often confidently wrong. Be skeptical "
    "and precise. " + DATA_RULES
)


@dataclass(frozen=True)
class ReflectionResult:
    name: str
    score: float | None
    """None when the call failed (the reflection is then left out of the score)."""
    reasoning: str | None = None
    parse_failed: bool = False
    error: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": self.score,
            "reasoning": self.reasoning,
            "parse_failed": self.parse_failed,
            "error": self.error,
        }


def _int_schema(key: str, reason_key: str, low: int, high: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            reason_key: {"type": "string"},
            key: {"type": "integer", "minimum": low, "maximum": high},
        },
        "required": [reason_key, key],
        "additionalProperties": False,
    }


def _number(obj: dict[str, Any] | None, key: str, text: str) -> float | None:
    raw = obj.get(key) if obj else None
    if raw is None:
        match = re.search(rf"{key}\W{{0,3}}(-?\d+(?:\.\d+)?)", text, re.IGNORECASE)
        raw = match.group(1) if match else None
    try:
        return None if raw is None or isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        return None


def _normal(token: str) -> str:
    return token.strip().strip("\"'`*.:, ").lower()


def _digit_expectation(
    logprobs: tuple[TokenLogprob, ...] | None, key: str, low: int, high: int
) -> float | None:
    """The expected value of a one-digit rating, from the alternatives at the rating token."""
    if not logprobs:
        return None
    text = ""
    for token in logprobs:
        text += token.token
        if key not in text.lower():
            continue
        digit = _normal(token.token)
        if not digit.isdigit():
            continue
        weights: dict[int, float] = {}
        for alt, lp in token.top or ((token.token, token.logprob),):
            word = _normal(alt)
            if word.isdigit() and low <= int(word) <= high:
                weights[int(word)] = weights.get(int(word), 0.0) + math.exp(lp)
        total = sum(weights.values())
        return None if total == 0 else sum(v * p for v, p in weights.items()) / total
    return None


def _true_probability(logprobs: tuple[TokenLogprob, ...] | None) -> float | None:
    """P(True) / (P(True) + P(False)) at the first token that is a True/False word."""
    for token in logprobs or ():
        word = _normal(token.token)
        if not word or not ("true".startswith(word) or "false".startswith(word)):
            continue
        return token.share("true", "false")
    return None


@dataclass(frozen=True)
class Reflection:
    """One verifier prompt: its task text, reply format and how a reply becomes a score."""

    name: str
    task: str
    schema: dict[str, Any] | None
    max_tokens: int
    score: Callable[[ChatResult], tuple[float | None, str | None]]


def _score_true_false(result: ChatResult) -> tuple[float | None, str | None]:
    p_true = _true_probability(result.logprobs)
    if p_true is not None:
        return p_true, None
    words = re.findall(r"[A-Za-z]+", result.text)
    first = words[0].lower() if words else ""
    return ({"true": 1.0, "false": 0.0}.get(first)), None


def _scaled(
    key: str, reason_key: str, low: int, high: int
) -> Callable[[ChatResult], tuple[float | None, str | None]]:
    def score(result: ChatResult) -> tuple[float | None, str | None]:
        obj = parse_json_object(result.text)
        reasoning = str(obj.get(reason_key)) if obj and obj.get(reason_key) else None
        expected = _digit_expectation(result.logprobs, key, low, high) if high - low <= 9 else None
        value = expected if expected is not None else _number(obj, key, result.text)
        if value is None or not math.isfinite(value):  # "NaN" is no certainty: unreadable
            return None, reasoning
        return min(1.0, max(0.0, (value - low) / (high - low))), reasoning

    return score


REFLECTIONS: tuple[Reflection, ...] = (
    Reflection(
        "true_false",
        "Is the PROPOSED ANSWER a correct response to the REQUEST? Many proposed answers sound "
        "convincing but are wrong; check every claim. If the request asks for no facts (a greeting, "
        "say), an appropriate reply counts as correct. Reply with exactly one word: True or False.",
        None,
        4,
        _score_true_false,
    ),
    Reflection(
        "certainty",
        "How certain are you that the PROPOSED ANSWER is a correct and complete response to the "
        "REQUEST? Check each claim it makes. Give your reasoning in two or three sentences, then a "
        "certainty from 0 (certainly wrong) to 100 (certainly correct). An answer that is obviously "
        "wrong gets 0.",
        _int_schema("certainty", "reasoning", 0, 100),
        320,
        _scaled("certainty", "reasoning", 0, 100),
    ),
    Reflection(
        "critique",
        "First make, in two or three sentences, the strongest case you can that the PROPOSED ANSWER "
        "to the REQUEST is wrong, incomplete or misleading. Then, weighing that case honestly, rate "
        "from 0 to 10 how likely the PROPOSED ANSWER is to be correct.",
        _int_schema("rating", "argument", 0, 10),
        320,
        _scaled("rating", "argument", 0, 10),
    ),
    Reflection(
        "rating",
        "Rate the PROPOSED ANSWER to the REQUEST: 5 = certainly correct, 4 = probably correct, "
        "3 = unsure, 2 = probably wrong, 1 = certainly wrong. Give your reasoning in two or three "
        "sentences, then the rating.",
        _int_schema("rating", "reasoning", 1, 5),
        320,
        _scaled("rating", "reasoning", 1, 5),
    ),
    Reflection(
        "verify_claims",
        "List the claims the PROPOSED ANSWER makes and verify each one, watching for tricky or "
        "ambiguous wording in the REQUEST (units, counts, orderings, false premises). Then rate the "
        "correctness of the PROPOSED ANSWER from 0 (wrong) to 10 (entirely correct).",
        _int_schema("rating", "verification", 0, 10),
        400,
        _scaled("rating", "verification", 0, 10),
    ),
)


async def reflect(
    model: ChatModel, reflection: Reflection, request: str, response: str
) -> ReflectionResult:
    data = delimit({"REQUEST": request, "PROPOSED ANSWER": response}, _chars(model))
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{data.text}\n\n{reflection.task}"},
    ]
    try:
        result = await model.achat(
            messages,
            temperature=0.0,
            max_tokens=reflection.max_tokens,
            logprobs=model.supports_logprobs,
            top_logprobs=5,
            json_schema=reflection.schema,
            cache_if=lambda r: (
                reflection.score(r)[0] is not None
            ),  # unreadable: ask again next time
        )
    except MODEL_CONFIGURATION_ERRORS:  # a configuration error: stop, do not record
        raise
    except ModelError as exc:
        return ReflectionResult(reflection.name, None, error=f"{type(exc).__name__}: {exc}")
    score, reasoning = reflection.score(result)
    reasoning = strip_block_markers(reasoning, data.codes)
    if score is None:
        return ReflectionResult(
            reflection.name, PARSE_FAILURE_SCORE, reasoning, parse_failed=True, cached=result.cached
        )
    return ReflectionResult(reflection.name, score, reasoning, cached=result.cached)


def _chars(model: ChatModel) -> int:
    return 5000 if model.provider.spec.provider == "local" else 200_000
