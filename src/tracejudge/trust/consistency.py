"""Observed consistency: sample fresh answers at temperature 1 and see whether they agree.

Each sample is asked to reason briefly and end with ``Final answer: ...``; the final answers
are compared with the response by the chosen similarity measure, and for an exact match.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from tracejudge.errors import MODEL_CONFIGURATION_ERRORS, ModelError
from tracejudge.models import ChatModel
from tracejudge.trust.conversation import Messages
from tracejudge.trust.similarity import (
    embedding_similarity,
    exact_match,
    llm_agreement,
    string_similarity,
)

SAMPLE_TEMPERATURE = 1.0
FORMAT_INSTRUCTION = (
    "\n\n(Think it through in at most three sentences first. Then end your reply with a last "
    "line of the form 'Final answer: <your answer>'.)"
)
_FINAL = re.compile(r"final answer\s*[:\-]\s*(.+)", re.IGNORECASE)


def final_answer(text: str) -> str:
    """The text after the last 'Final answer:', else the whole text."""
    matches = _FINAL.findall(text or "")
    if matches:
        return matches[-1].strip().strip("*").strip()
    return (text or "").strip()


@dataclass(frozen=True)
class SampleResult:
    answer: str | None
    similarity: float | None
    exact: float | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "similarity": self.similarity,
            "exact_match": self.exact,
            "error": self.error,
        }


def _sampling_messages(messages: Messages) -> Messages:
    out = [dict(m) for m in messages]
    last_user = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
    if last_user is None:
        out.append({"role": "user", "content": FORMAT_INSTRUCTION.strip()})
    else:
        out[last_user]["content"] = f"{out[last_user]['content']}{FORMAT_INSTRUCTION}"
    return out


async def sample_one(
    model: ChatModel,
    messages: Messages,
    request_text: str,
    response: str,
    index: int,
    measure: str,
    max_tokens: int,
) -> SampleResult:
    try:
        result = await model.achat(
            _sampling_messages(messages),
            temperature=SAMPLE_TEMPERATURE,
            max_tokens=max_tokens,
            seed=1000 + index,
            sample_index=index,
            cache_if=lambda r: bool((r.text or "").strip()),  # an empty reply: ask again next time
        )
    except MODEL_CONFIGURATION_ERRORS:  # a configuration error: stop, do not record
        raise
    except ModelError as exc:
        return SampleResult(None, None, None, f"{type(exc).__name__}: {exc}")
    if not (result.text or "").strip():  # an overloaded server's 200 with no content
        return SampleResult(None, None, None, f"sample {index} came back empty")
    if result.finish_reason in ("length", "max_tokens") and not _FINAL.search(result.text or ""):
        # Cut off in its reasoning: its answer is unknown, and comparing half an argument with
        # the response would count as disagreement. Left out of the consistency, and recorded.
        return SampleResult(None, None, None, f"sample {index} was cut off before its final answer")
    answer = final_answer(result.text)
    reference = final_answer(response)
    if measure == "llm":
        similarity = await llm_agreement(model, request_text, reference, answer)
    elif measure == "embedding":
        similarity = await asyncio.to_thread(embedding_similarity, reference, answer)
    else:
        similarity = string_similarity(reference, answer)
    return SampleResult(answer, similarity, exact_match(reference, answer))
