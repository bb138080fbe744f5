"""``TrustScorer``: a trustworthiness score for any (prompt, response), with no ground truth.

The method follows Chen & Mueller's BSDetector and Cleanlab's TLM: several self-reflection
verifiers, the consistency of answers resampled at temperature 1, and the response's own token
probabilities when the scorer generated it, combined by a weighted mean. Implemented here from
the published description, on any model :mod:`tracejudge.models` can reach.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracejudge.errors import (
    MODEL_CONFIGURATION_ERRORS,
    InvalidArgumentError,
    ModelError,
    TraceJudgeError,
)
from tracejudge.models import ChatModel, resolve_model, run_sync
from tracejudge.models.types import TokenLogprob
from tracejudge.trust.combine import combine, explain, mean, unanimous
from tracejudge.trust.consistency import SampleResult, sample_one
from tracejudge.trust.conversation import Messages, as_messages, render_request
from tracejudge.trust.options import TrustOptions, resolve_options
from tracejudge.trust.reflection import REFLECTIONS, ReflectionResult, reflect
from tracejudge.trust.similarity import check_embeddings_installed
from tracejudge.trust.weights import merged

Prompt = str | Sequence[Mapping[str, Any]]


@dataclass
class TrustScore:
    """One scored response: the score, its parts, and what each check said."""

    score: float | None
    parts: dict[str, float | None]
    reflections: list[ReflectionResult] = field(default_factory=list)
    samples: list[SampleResult] = field(default_factory=list)
    explanation: str | None = None
    early_stopped: bool = False
    model: str = ""
    response: str | None = None
    error: str | None = None

    def to_dict(self, log: Sequence[str] = ()) -> dict[str, Any]:
        """The TLM-style result: ``{"trustworthiness_score": ..., "log": {...}}``."""
        details: dict[str, Any] = {
            "model": self.model,
            "reflections": [r.to_dict() for r in self.reflections],
            "samples": [s.to_dict() for s in self.samples],
            "early_stopped": self.early_stopped,
        }
        if "explanation" in log:
            details["explanation"] = self.explanation
        details["per_component"] = dict(self.parts)  # always: cheap, and what a reviewer wants
        if self.error is not None:
            details["error"] = {"message": self.error}
        out: dict[str, Any] = {"trustworthiness_score": self.score, "log": details}
        if self.response is not None:
            out = {"response": self.response, **out}
        return out


def token_probability(logprobs: Sequence[TokenLogprob] | None) -> float | None:
    """Mean per-token probability of a generated response (None without log-probabilities)."""
    if not logprobs:
        return None
    return sum(math.exp(t.logprob) for t in logprobs) / len(logprobs)


class TrustScorer:
    """Score how far to trust responses, with no ground truth.

    >>> scorer = TrustScorer(quality_preset="medium", options={"log": ["explanation"]})
    >>> scorer.get_trustworthiness_score("What is 7 x 8?", "54")
    {'trustworthiness_score': 0.08, 'log': {'explanation': '...', ...}}

    ``prompt`` may be a string or chat messages (a system prompt is then part of what is
    judged). Lists of prompts and responses are scored concurrently; in a list, an item that
    fails gives a score of None with its error instead of failing the batch.
    """

    def __init__(
        self,
        model: str | ChatModel | None = None,
        quality_preset: str = "medium",
        options: Mapping[str, Any] | TrustOptions | None = None,
    ) -> None:
        self.quality_preset = quality_preset
        self.options = resolve_options(quality_preset, options)
        if self.options.similarity_measure == "embedding" and self.options.num_consistency_samples:
            check_embeddings_installed()
        self.model = resolve_model(model if model is not None else self.options.model)

    def __repr__(self) -> str:
        return f"TrustScorer(model={self.model.uri!r}, quality_preset={self.quality_preset!r})"

    # ------------------------------------------------------------------ core

    async def score_messages(
        self,
        messages: Prompt,
        response: str,
        response_logprobs: Sequence[TokenLogprob] | None = None,
    ) -> TrustScore:
        """Score ``response`` to the conversation ``messages``. Raises ModelError if every check failed."""
        conversation = as_messages(messages)
        if not isinstance(response, str):
            raise InvalidArgumentError(
                f"A response to score must be a string, not {type(response).__name__}."
            )
        request_text = render_request(conversation)
        o = self.options
        if o.early_stop and o.num_consistency_samples >= 2 and o.num_self_reflections:
            # samples first: when they all agree with the response, or all contradict it, the
            # reflections are not asked (benchmarks/fit_trust_weights.py measured the rules)
            samples = await self._samples(conversation, request_text, response)
            stop = unanimous([x.similarity for x in samples], o.early_stop_margin)
            reflections = [] if stop else await self._reflections(request_text, response)
        else:
            stop = False
            reflections, samples = await asyncio.gather(
                self._reflections(request_text, response),
                self._samples(conversation, request_text, response),
            )
        readable = [r for r in reflections if not r.parse_failed]
        parts = {
            # unreadable replies count as 0.5 beside readable ones, but alone they are no signal
            "self_reflection": mean([r.score for r in reflections]) if readable else None,
            "consistency": mean([s.similarity for s in samples]),
            "exact_match": mean([s.exact for s in samples]),
            "token_probability": token_probability(response_logprobs),
        }
        score = combine(parts, merged(o.weights, self.model.uri))
        if score is None:
            errors = [r.error or f"{r.name}: unreadable reply" for r in reflections]
            errors += [s.error for s in samples if s.error]
            raise ModelError(
                "Every trust check failed: "
                + ("; ".join(e for e in errors if e)[:500] or "no parts")
            )
        explanation = explain(
            score, o.explanation_threshold, reflections, samples, parts["consistency"]
        )
        return TrustScore(score, parts, reflections, samples, explanation, stop, self.model.uri)

    async def _reflections(self, request_text: str, response: str) -> list[ReflectionResult]:
        checks = REFLECTIONS[: self.options.num_self_reflections]
        return list(
            await asyncio.gather(*(reflect(self.model, r, request_text, response) for r in checks))
        )

    async def _samples(
        self, conversation: Messages, request_text: str, response: str
    ) -> list[SampleResult]:
        o = self.options
        return list(
            await asyncio.gather(
                *(
                    sample_one(
                        self.model,
                        conversation,
                        request_text,
                        response,
                        i,
                        o.similarity_measure,
                        o.max_tokens,
                    )
                    for i in range(o.num_consistency_samples)
                )
            )
        )

    async def generate(self, messages: Prompt) -> tuple[str, tuple[TokenLogprob, ...] | None]:
        """The model's own response (greedy) and its token log-probabilities where available."""
        result = await self.model.achat(
            as_messages(messages),
            temperature=0.0,
            max_tokens=self.options.max_tokens,
            logprobs=self.model.supports_logprobs,
            top_logprobs=1,
        )
        return result.text, result.logprobs

    # ----------------------------------------------------------- public API

    async def get_trustworthiness_score_async(
        self, prompt: Prompt | Sequence[Prompt], response: str | Sequence[str]
    ) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(response, str):
            scored = await self.score_messages(_single(prompt), response)
            return scored.to_dict(self.options.log)
        prompts: list[Prompt] | None = list(prompt) if not isinstance(prompt, str) else None  # type: ignore[arg-type]
        responses = list(response)
        if prompts is None or len(prompts) != len(responses):
            raise InvalidArgumentError(
                "Give one prompt per response (two lists of the same length)."
            )
        return await self._batch(
            [self._score_item(p, r) for p, r in zip(prompts, responses, strict=True)]
        )

    def get_trustworthiness_score(
        self, prompt: Prompt | Sequence[Prompt], response: str | Sequence[str]
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """``{"trustworthiness_score": float, "log": {...}}``, or a list of them for lists."""
        return run_sync(self.get_trustworthiness_score_async(prompt, response))

    async def prompt_async(
        self, prompt: Prompt | Sequence[Prompt]
    ) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(prompt, str) or _is_messages(prompt):
            return await self._prompt_one(prompt)  # type: ignore[arg-type]
        return await self._batch([self._prompt_one(p) for p in prompt])  # type: ignore[arg-type]

    def prompt(self, prompt: Prompt | Sequence[Prompt]) -> dict[str, Any] | list[dict[str, Any]]:
        """Generate a response with the model and score it (its token probabilities included)."""
        return run_sync(self.prompt_async(prompt))

    async def _prompt_one(self, prompt: Prompt) -> dict[str, Any]:
        response, logprobs = await self.generate(prompt)
        scored = await self.score_messages(prompt, response, logprobs)
        scored.response = response
        return scored.to_dict(self.options.log)

    async def _score_item(self, prompt: Prompt, response: str) -> dict[str, Any]:
        scored = await self.score_messages(prompt, response)
        return scored.to_dict(self.options.log)

    async def _batch(self, items: list[Any]) -> list[dict[str, Any]]:
        # A model that takes one call at a time (llama.cpp) scores items one by one: the calls of
        # one item then follow each other and reuse its evaluated prompt prefix.
        gate = asyncio.Semaphore(min(self.options.max_concurrency, self.model.limiter.maximum))

        async def guarded(item: Any) -> dict[str, Any]:
            async with gate:
                try:
                    return await item
                except MODEL_CONFIGURATION_ERRORS:  # a configuration error stops the batch
                    raise
                except TraceJudgeError as exc:
                    return {
                        "trustworthiness_score": None,
                        "log": {
                            "error": {
                                "message": str(exc),
                                "type": type(exc).__name__,
                                "retryable": bool(getattr(exc, "retryable", False)),
                            }
                        },
                    }

        return list(await asyncio.gather(*(guarded(i) for i in items)))


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and bool(value)
        and all(isinstance(m, Mapping) and "role" in m for m in value)
    )


def _single(prompt: Any) -> Prompt:
    if isinstance(prompt, str) or _is_messages(prompt):
        return prompt
    raise InvalidArgumentError(
        "A single response needs a single prompt (a string or a list of chat messages)."
    )
