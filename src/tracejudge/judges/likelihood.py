"""How much the context makes the response likely: a groundedness signal read, not written.

The judge model reads the response twice, as its own answer to the request: once with the
context in front of it, once without (two scoring passes, no text generated). For each token
the difference of the two log-probabilities is its pointwise mutual information with the
context (the measure of van der Poel et al., "Mutual Information Alleviates Hallucinations in
Abstractive Summarization", EMNLP 2022, used here to detect rather than to decode). A token
copied or inferred from the context gains probability from it; an invented name or number, or
one that contradicts the context, loses probability; filler ("Sure, ...") is unaffected. The
signals are the mean over the response and the weakest token: one invented fact is enough to
make a response unsupported, however long the rest.

Needs a provider that reads a given reply's log-probabilities (``ChatModel.supports_reading``:
the in-process llama.cpp models); elsewhere the judgement goes without these signals.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracejudge.models import ChatModel, ChatResult

SIGNALS = ("pmi_mean", "pmi_min")
"""The signals a read gives (:meth:`ContextSupport.signals`): the mean and the weakest token."""

WITH_CONTEXT_SYSTEM = "Answer the request using only the information in the context."
WITHOUT_CONTEXT_SYSTEM = "Answer the request."


@dataclass(frozen=True)
class ContextSupport:
    """Per-token pointwise mutual information of the response with the context (in nats)."""

    tokens: tuple[str, ...]
    pmi: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.pmi) / len(self.pmi)

    @property
    def weakest(self) -> float:
        return min(self.pmi)

    def signals(self) -> dict[str, float]:
        return dict(zip(SIGNALS, (self.mean, self.weakest), strict=True))

    def weakest_passage(self, width: int = 4) -> str:
        """The words around the token the context made least likely (for the rationale)."""
        i = self.pmi.index(self.weakest)
        return "".join(self.tokens[max(0, i - width) : i + width + 1]).strip()


def messages_for(request: str, context: str | None) -> list[dict[str, str]]:
    """The prompt the response is read after: with the context, or without it."""
    if context is None:
        return [
            {"role": "system", "content": WITHOUT_CONTEXT_SYSTEM},
            {"role": "user", "content": f"Request:\n{request}"},
        ]
    return [
        {"role": "system", "content": WITH_CONTEXT_SYSTEM},
        {"role": "user", "content": f"Context:\n{context}\n\nRequest:\n{request}"},
    ]


async def context_support(
    model: ChatModel,
    request: str,
    context: str,
    response: str,
    calls: list[ChatResult] | None = None,
) -> ContextSupport | None:
    """The response read with and without the context (each call appended to ``calls``, for
    the judgement's usage); None for an empty response.

    Raises ModelError like any call (the judgement records it)."""
    if not response.strip():
        return None
    with_context = await model.aread(messages_for(request, context), response)
    without = await model.aread(messages_for(request, None), response)
    if calls is not None:
        calls += [with_context, without]
    a, b = with_context.logprobs or (), without.logprobs or ()
    if not a or len(a) != len(b):  # both read the same reply, tokenised the same way
        return None
    return ContextSupport(
        tokens=tuple(t.token for t in a),
        pmi=tuple(x.logprob - y.logprob for x, y in zip(a, b, strict=True)),
    )
