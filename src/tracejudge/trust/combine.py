"""Turning the parts into one score, and a low score into an explanation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from tracejudge.trust.consistency import SampleResult
from tracejudge.trust.reflection import ReflectionResult

CONSISTENCY_DOUBT = 0.7
REFLECTION_DOUBT = 0.7


def unanimous(values: Sequence[float | None], margin: float) -> bool:
    """At least two values present, and every one within ``margin`` of 1 or every one within
    ``margin`` of 0: the checks agree, so more checks would add little (the early stop)."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return False
    return all(v >= 1 - margin for v in present) or all(v <= margin for v in present)


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values present (None and NaN are left out); None if there are none."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None


def combine(parts: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    """Weighted mean over the parts present, weights renormalised over them, clipped to [0, 1]."""
    total = weighted = 0.0
    for name, value in parts.items():
        weight = weights.get(name, 0.0)
        if value is None or math.isnan(value) or weight <= 0:
            continue
        total += weight
        weighted += weight * min(1.0, max(0.0, value))
    if total == 0:
        return None
    return min(1.0, max(0.0, weighted / total))


def explain(
    score: float,
    threshold: float,
    reflections: Sequence[ReflectionResult],
    samples: Sequence[SampleResult],
    consistency: float | None,
) -> str:
    """Why to doubt a response: the most negative reflection's reasoning and, when the model's
    own resampled answers disagree, one of the disagreeing answers."""
    if score >= threshold:
        return "Did not find a reason to doubt this response."
    reasons = []
    scored = [r for r in reflections if r.score is not None]
    doubters = sorted(
        (r for r in scored if r.score is not None and r.score < REFLECTION_DOUBT),
        key=lambda r: r.score or 0.0,
    )
    reasoning = next((r.reasoning.strip() for r in doubters if r.reasoning), None)
    if reasoning:
        reasons.append(f"On reflection the model doubted this response: {reasoning}")
    elif doubters:  # a verdict-only check (True/False): say how strongly it doubted, no more
        worst = doubters[0]
        reasons.append(
            f"Its {worst.name.replace('_', '/')} self-check rated this response "
            f"{worst.score:.2f} (0 = wrong, 1 = correct) without giving a reason."
        )
    if consistency is not None and consistency < CONSISTENCY_DOUBT:
        alternatives = [
            (s.similarity or 0.0, s.answer)
            for s in samples
            if s.answer and s.similarity is not None
        ]
        if alternatives:
            answer = min(alternatives, key=lambda pair: pair[0])[1] or ""
            reasons.append(
                "Asked again, the model did not answer the same way; one alternative answer: "
                f"{answer.strip()[:500]}"
            )
    if not reasons:
        reasons.append("The response looks uncertain, though no single check gave a clear reason.")
    return " ".join(reasons)
