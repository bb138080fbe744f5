"""Running one judgement: prompt, call, parse, one repair attempt, and a Feedback either way.

A judge never raises for what goes wrong during a judgement: a failed call or an unreadable
reply becomes a Feedback whose ``error`` says so, with the raw reply kept in its metadata.
Only configuration mistakes (an unknown model URI, no model at all) raise, before any call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracejudge.entities import AssessmentError, AssessmentSource, AssessmentSourceType, Feedback
from tracejudge.errors import ModelError
from tracejudge.judges.formatting import DATA_RULES, delimit
from tracejudge.judges.parsing import parse_verdict, yes_no
from tracejudge.models import ChatModel, ChatResult, TokenLogprob, resolve_model

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "verdict": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}
REPAIR_PROMPT = (
    "Your reply could not be read. Reply again with only one JSON object of the form "
    '{"rationale": "<reasoning>", "verdict": "yes"} or {"rationale": "<reasoning>", "verdict": "no"}, '
    "and nothing before or after it."
)
JUDGE_PREAMBLE = (
    "You are a meticulous, impartial evaluator of the outputs of an AI application. {rules}\n\n"
    "Reason first, then decide. Reply with one JSON object and nothing else: "
    '{{"rationale": "<your reasoning in one to three sentences>", "verdict": "yes" or "no"}}.'
)
MAX_TOKENS = 400
LOCAL_CHARS_PER_BLOCK = 5000
REMOTE_CHARS_PER_BLOCK = 200_000

Parser = Callable[[str], "tuple[Any, str | None] | None"]


@dataclass(frozen=True)
class JudgeSpec:
    """What one judgement needs: a task description and the blocks of data it looks at."""

    name: str
    task: str
    blocks: Mapping[str, str]
    schema: dict[str, Any] | None = None
    parse: Parser = parse_verdict
    repair_prompt: str = REPAIR_PROMPT
    preamble: str = JUDGE_PREAMBLE


def _chars_per_block(model: ChatModel) -> int:
    return (
        LOCAL_CHARS_PER_BLOCK if model.provider.spec.provider == "local" else REMOTE_CHARS_PER_BLOCK
    )


def build_messages(spec: JudgeSpec, model: ChatModel) -> tuple[list[dict[str, str]], bool]:
    data = delimit(spec.blocks, _chars_per_block(model))
    system = spec.preamble.format(rules=DATA_RULES)
    user = f"{data.text}\n\n{spec.task}"
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ], data.truncated


def _normal(token: str) -> str:
    return token.strip().strip("\"'`*.:, ").lower()


def verdict_probabilities(
    logprobs: tuple[TokenLogprob, ...] | None, verdict: str
) -> dict[str, float]:
    """P(yes) and the probability of the chosen verdict, read at the verdict token.

    The verdict token is the first token after the text ``verdict`` whose normalised form
    starts a yes/no word; its top alternatives give the yes/no split.
    """
    if not logprobs:
        return {}
    text, seen_key = "", False
    for token in logprobs:
        text += token.token
        if not seen_key:
            seen_key = "verdict" in text.lower()
            continue
        word = _normal(token.token)
        if not word or not ("yes".startswith(word) or "no".startswith(word)):
            continue
        p_yes = p_no = 0.0
        for alt, logprob in token.top or ((token.token, token.logprob),):
            alt_word = _normal(alt)
            if alt_word and "yes".startswith(alt_word):
                p_yes += math.exp(logprob)
            elif alt_word and "no".startswith(alt_word):
                p_no += math.exp(logprob)
        if p_yes + p_no == 0:
            return {}
        share_yes = p_yes / (p_yes + p_no)
        return {
            "p_yes": share_yes,
            "verdict_confidence": share_yes if verdict == "yes" else 1 - share_yes,
        }
    return {}


def _metadata(model: ChatModel, results: list[ChatResult], truncated: bool) -> dict[str, Any]:
    costs = [r.cost_usd for r in results]
    meta: dict[str, Any] = {
        "model": model.uri,
        "input_tokens": sum(r.usage.input_tokens for r in results),
        "output_tokens": sum(r.usage.output_tokens for r in results),
        "latency_s": round(sum(r.latency_s for r in results), 4),
        "cost_usd": None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        "model_calls": sum(0 if r.cached else 1 for r in results),
        "cached": all(r.cached for r in results),
    }
    if truncated:
        meta["input_truncated"] = True
    return meta


async def run_judge(spec: JudgeSpec, model: str | ChatModel | None) -> Feedback:
    chat_model = resolve_model(model)  # configuration errors raise here, before any call
    source = AssessmentSource(AssessmentSourceType.LLM_JUDGE, chat_model.uri)
    messages, truncated = build_messages(spec, chat_model)
    results: list[ChatResult] = []
    call: dict[str, Any] = {
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "logprobs": chat_model.supports_logprobs,
        "top_logprobs": 5,
        "json_schema": spec.schema if spec.schema is not None else VERDICT_SCHEMA,
    }
    try:
        first = await chat_model.achat(messages, **call)
        results.append(first)
        parsed = spec.parse(first.text)
        if parsed is None:  # one repair attempt, showing the model its own reply
            repair = [
                *messages,
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": spec.repair_prompt},
            ]
            second = await chat_model.achat(repair, **call)
            results.append(second)
            parsed = spec.parse(second.text)
    except ModelError as exc:
        meta = _metadata(chat_model, results, truncated)
        return Feedback(
            spec.name, None, source=source, error=AssessmentError.from_exception(exc), metadata=meta
        )
    meta = _metadata(chat_model, results, truncated)
    if parsed is None:
        meta["raw_output"] = [r.text for r in results]
        error = AssessmentError(
            "JUDGE_PARSE_ERROR",
            f"The judge's reply could not be read, even after a repair request: {results[-1].text[:300]!r}",
        )
        return Feedback(spec.name, None, source=source, error=error, metadata=meta)
    value, rationale = parsed
    if len(results) > 1:
        meta["repaired"] = True
    if yes_no(value) is not None and isinstance(value, str):
        meta.update(verdict_probabilities(results[-1].logprobs, value))
    return Feedback(spec.name, value, source=source, rationale=rationale, metadata=meta)
