"""How much the context makes the response likely: a groundedness signal read, not written.

The judge model reads the response twice, as its own answer to the request: once with the
context in front of it, once without (two scoring passes, no text generated). The prompts are
the judge's own blocks, so the first read shares its prefix with the judgement's other calls. For each token
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

import re
from collections.abc import Mapping
from dataclasses import dataclass

from tracejudge.judges.formatting import JUDGE_SYSTEM, delimit
from tracejudge.judges.support import STOPWORDS
from tracejudge.models import ChatModel, ChatResult

SIGNALS = ("pmi_mean", "pmi_min", "pmi_word_min", "pmi_sentence_min")
"""The signals a read gives (:meth:`ContextSupport.signals`): the mean over the response, the
weakest token, the weakest content word (its tokens' PMI summed: function words that a
rewording changes are left out) and the weakest sentence (its tokens' mean)."""

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])|\n+")


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

    def _starts(self) -> list[int]:
        starts, at = [], 0
        for token in self.tokens:
            starts.append(at)
            at += len(token)
        return starts

    def words(self) -> list[tuple[str, float]]:
        """The response's content words with their PMI (the sum over their tokens): words that
        are not stop words, of three letters or more, or numbers."""
        words: list[tuple[str, float]] = []
        text, total = "", 0.0

        def close() -> None:
            word = text.strip().strip("\"'“”‘’()[],.;:!?").lower()
            if word and word not in STOPWORDS and (len(word) >= 3 or word.isdigit()):
                words.append((word, total))

        for token, value in zip(self.tokens, self.pmi, strict=True):
            starts_word = not text or token[:1].isspace() or not token.strip()[:1].isalnum()
            if starts_word and text:
                close()
                text, total = "", 0.0
            text += token
            total += value
        if text:
            close()
        return words

    def sentence_means(self) -> list[float]:
        """The mean token PMI of each sentence of the response."""
        ends = [m.end() for m in _SENTENCE_END.finditer("".join(self.tokens))]
        means: list[float] = []
        bucket: list[float] = []
        for start, value in zip(self._starts(), self.pmi, strict=True):
            while ends and start >= ends[0]:
                ends.pop(0)
                if bucket:
                    means.append(sum(bucket) / len(bucket))
                bucket = []
            bucket.append(value)
        if bucket:
            means.append(sum(bucket) / len(bucket))
        return means

    def signals(self) -> dict[str, float]:
        words = [value for _, value in self.words()]
        return dict(
            zip(
                SIGNALS,
                (
                    self.mean,
                    self.weakest,
                    min(words) if words else self.weakest,
                    min(self.sentence_means()),
                ),
                strict=True,
            )
        )

    def weakest_passage(self, width: int = 4) -> str:
        """The words around the token the context made least likely (for the rationale)."""
        i = self.pmi.index(self.weakest)
        return "".join(self.tokens[max(0, i - width) : i + width + 1]).strip()


def messages_for(request: tuple[str, str], context: tuple[str, str] | None) -> list[dict[str, str]]:
    """The prompt the response is read after, as ``(block name, text)`` pairs: the judge's own
    system prompt and delimited blocks, so the read with the context shares its prompt prefix
    with the judgement's other calls (a local model evaluates the context once)."""
    blocks = dict([request] if context is None else [request, context])
    task = (
        f"Answer the {request[0]}."
        if context is None
        else f"Answer the {request[0]} using only what the {context[0]} says."
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"{delimit(blocks).text}\n\n{task}"},
    ]


async def context_support(
    model: ChatModel,
    blocks: Mapping[str, str],
    response: str,
    calls: list[ChatResult] | None = None,
) -> ContextSupport | None:
    """The response read after the request and context blocks (``{"REQUEST": ..., "CONTEXT":
    ...}``, in that order) and after the request alone; each call is appended to ``calls`` for
    the judgement's usage. None for an empty response.

    Raises ModelError like any call (the judgement records it)."""
    if not response.strip():
        return None
    request, context = list(blocks.items())[:2]
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
