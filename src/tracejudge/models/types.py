"""What goes into a chat call and what comes back, whatever the provider."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

Message = dict[str, Any]
"""An OpenAI-style chat message: ``{"role": "system"|"user"|"assistant", "content": str}``."""


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    json_schema: dict[str, Any] | None = None
    """Ask for JSON matching this schema where the provider can enforce it (else plain JSON)."""
    sample_index: int = 0
    """Which of several samples this is: equal requests with different indexes are cached apart."""
    continuation: str | None = None
    """Read this reply instead of writing one: the result's ``logprobs`` are the log-probability
    of each of its tokens (teacher forcing), for providers with ``supports_continuation``."""

    def cache_fields(self, model_id: str) -> dict[str, Any]:
        fields = {
            "model": model_id,
            "messages": list(self.messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "json_schema": self.json_schema,
            "sample_index": self.sample_index,
        }
        if self.continuation is not None:  # absent otherwise: earlier cache keys stay valid
            fields["continuation"] = self.continuation
        return fields


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the most likely alternatives at that place."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    def share(self, positive: str, negative: str, strip: str = "\"'`*.:, ") -> float | None:
        """P(positive) / (P(positive) + P(negative)) among this token's top alternatives.

        An alternative counts for a word when, stripped of ``strip`` and lower-cased, it is a
        prefix of that word ("Y", "yes", "Yes" all count for "yes"). None when neither appears.
        """
        p_pos = p_neg = 0.0
        for alt, logprob in self.top or ((self.token, self.logprob),):
            word = alt.strip().strip(strip).lower()
            if word and positive.startswith(word):
                p_pos += math.exp(logprob)
            elif word and negative.startswith(word):
                p_neg += math.exp(logprob)
        return None if p_pos + p_neg == 0 else p_pos / (p_pos + p_neg)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ChatResult:
    text: str
    model_id: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    logprobs: tuple[TokenLogprob, ...] | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    cached: bool = False

    def with_(self, **changes: Any) -> ChatResult:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model_id": self.model_id,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "latency_s": self.latency_s,
            "logprobs": None
            if self.logprobs is None
            else [[t.token, t.logprob, [list(a) for a in t.top]] for t in self.logprobs],
            "cost_usd": self.cost_usd,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatResult:
        usage = data.get("usage") or {}
        logprobs = data.get("logprobs")
        return cls(
            text=data["text"],
            model_id=data["model_id"],
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            latency_s=float(data.get("latency_s") or 0.0),
            logprobs=None
            if logprobs is None
            else tuple(
                TokenLogprob(t, float(lp), tuple((a, float(b)) for a, b in top))
                for t, lp, top in logprobs
            ),
            cost_usd=data.get("cost_usd"),
            finish_reason=data.get("finish_reason"),
        )
