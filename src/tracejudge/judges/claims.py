"""Claim-by-claim checking: a response is only as grounded as its least supported sentence.

A judgement of a whole response weighs a long, mostly right answer and a short one alike, and
a small model's single verdict on a paragraph is close to a coin toss. Here the response is cut
into sentences (its claims) and the model is asked, for each one, whether the context supports
it; the answer is read as P(yes) at the first token, so each check is one short call whose
prompt shares everything up to the claim with the judgement's other calls (a local model
evaluates the context once). A sentence that states no fact (a greeting, a question back to the
user) is asked too, and is expected to pass.

Sentence splitting is deliberately simple (no language model, no NLP library): a sentence ends
at ``.``, ``!`` or ``?`` followed by a space and a capital letter, digit or quote, unless the
word before it is a known abbreviation or an initial; new lines end sentences too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CLAIMS = 8
"""Sentences checked per response; longer responses have their shortest sentences merged into
their neighbours until this many remain, so every word is still checked."""
MIN_CLAIM_CHARS = 12
"""Shorter fragments ("Yes.", "Sure!") are merged into the following sentence."""

_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs etc inc ltd co corp no fig al approx dept est gen gov
    lt col sgt capt rev mt ft jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e u.s
    u.k a.m p.m""".split()  # noqa: SIM905
)
_BOUNDARY = re.compile(r"([.!?][\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def _ends_with_abbreviation(text: str) -> bool:
    words = text.rstrip(".!?").split()
    if not words:
        return False
    last = words[-1].lower().strip("\"'“‘(")
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, in order, whitespace-normalised."""
    sentences: list[str] = []
    for line in re.split(r"\n\s*", text.strip()):
        line = re.sub(r"\s+", " ", line).strip(" -*•\t")
        if not line:
            continue
        start = 0
        for match in _BOUNDARY.finditer(line):
            piece = line[start : match.end(1)].strip()
            if _ends_with_abbreviation(piece):
                continue
            sentences.append(piece)
            start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]


def split_claims(text: str, limit: int = MAX_CLAIMS) -> list[str]:
    """The response's sentences to check: fragments merged forward, at most ``limit``."""
    merged: list[str] = []
    carry = ""
    for sentence in split_sentences(text):
        sentence = f"{carry} {sentence}".strip() if carry else sentence
        if len(sentence) < MIN_CLAIM_CHARS:
            carry = sentence
            continue
        carry = ""
        merged.append(sentence)
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        else:
            merged.append(carry)
    while len(merged) > max(1, limit):  # join the shortest adjacent pair
        i = min(range(len(merged) - 1), key=lambda k: len(merged[k]) + len(merged[k + 1]))
        merged[i : i + 2] = [f"{merged[i]} {merged[i + 1]}"]
    return merged


@dataclass(frozen=True)
class ClaimSupport:
    """The model's P(supported) for each claim of a response (None where a check failed)."""

    claims: tuple[str, ...]
    support: tuple[float | None, ...]
    errors: tuple[str, ...] = ()

    @property
    def checked(self) -> list[tuple[str, float]]:
        return [(c, s) for c, s in zip(self.claims, self.support, strict=True) if s is not None]

    def signals(self) -> dict[str, float]:
        """``claim_min`` (the weakest claim) and ``claim_mean``; empty if no check succeeded."""
        values = [s for _, s in self.checked]
        if not values:
            return {}
        return {"claim_min": min(values), "claim_mean": sum(values) / len(values)}

    def weakest(self) -> tuple[str, float] | None:
        checked = self.checked
        return min(checked, key=lambda pair: pair[1]) if checked else None

    def to_metadata(self) -> list[dict[str, object]]:
        return [
            {"claim": c, "support": None if s is None else round(s, 4)}
            for c, s in zip(self.claims, self.support, strict=True)
        ]
