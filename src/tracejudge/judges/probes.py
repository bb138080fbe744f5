"""Yes/no probes: a judge's question asked for a one-word answer, scored by the model's P(yes).

A judgement whose verdict is read after the model has written its reasoning is nearly always
0 or 1: the reasoning has already committed it. The probability of "yes" as the *first* word
of an answer is graded, and asking the same question in two phrasings (one of them inverted,
so that "yes" means bad) cancels part of a small model's habit of saying yes. A probe costs one
call of one or two output tokens, and shares its prompt prefix (rules and data) with the
judgement's other calls, which a local model does not evaluate again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracejudge.errors import MODEL_CONFIGURATION_ERRORS, ModelError
from tracejudge.models import ChatModel, ChatResult, TokenLogprob

ONE_WORD = "Answer with one word: yes or no."


@dataclass(frozen=True)
class Probe:
    """One yes/no question about the judged blocks."""

    name: str
    question: str
    inverted: bool = False
    """True when "yes" is the bad answer: the probe's score is then 1 - P(yes)."""


@dataclass(frozen=True)
class ProbeResult:
    name: str
    score: float | None
    """In [0, 1], higher = the judged material passes; None when the call failed or was unreadable."""
    p_yes: float | None = None
    error: str | None = None


_STRIP = "\"'`*.:,!"


def _normal(token: str) -> str:
    return token.strip().strip(_STRIP).lower()


def first_yes_no_probability(logprobs: tuple[TokenLogprob, ...] | None) -> float | None:
    """P(yes) / (P(yes) + P(no)) at the first generated token that is a yes/no word."""
    for token in logprobs or ():
        word = _normal(token.token)
        if not word:
            continue
        if not ("yes".startswith(word) or "no".startswith(word)):
            return None  # the answer did not start with yes or no
        return token.share("yes", "no", _STRIP)
    return None


def _text_yes_no(text: str) -> float | None:
    words = re.findall(r"[A-Za-z]+", text)
    first = words[0].lower() if words else ""
    return {"yes": 1.0, "no": 0.0}.get(first)


def _read_yes_no(result: ChatResult) -> float | None:
    p_yes = first_yes_no_probability(result.logprobs)
    return p_yes if p_yes is not None else _text_yes_no(result.text)


async def run_probe(
    model: ChatModel, system: str, data: str, probe: Probe
) -> tuple[ProbeResult, ChatResult | None]:
    """Ask one probe; returns its result and the ChatResult (None when the call failed)."""
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{data}\n\n{probe.question} {ONE_WORD}"},
    ]
    try:
        result = await model.achat(
            messages,
            temperature=0.0,
            max_tokens=2,  # the first token's alternatives are recorded when the second starts
            logprobs=model.supports_logprobs,
            top_logprobs=10,
            cache_if=lambda r: _read_yes_no(r) is not None,
        )
    except MODEL_CONFIGURATION_ERRORS:  # a configuration error: stop, do not record
        raise
    except ModelError as exc:
        return ProbeResult(probe.name, None, error=f"{type(exc).__name__}: {exc}"), None
    p_yes = _read_yes_no(result)
    if p_yes is None:
        return ProbeResult(probe.name, None, error=f"unreadable: {result.text[:80]!r}"), result
    score = 1.0 - p_yes if probe.inverted else p_yes
    return ProbeResult(probe.name, score, p_yes), result
