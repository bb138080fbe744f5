"""Turning a judgement's signals into one score in [0, 1]: a small logistic model.

A groundedness judgement has several signals: the model's P(yes) after its written reasoning,
its P(yes) to one-word probes (one of them inverted), and word-level support of the response in
its context. Each is weak alone; a logistic regression on them, fitted once on a labelled
development split (``benchmarks/judge_quality.py --split dev --fit``), weighs them. Model
probabilities enter as log-odds, clipped so a single overconfident token cannot decide alone.

The weights are fitted for one judge model. For any other model the same weights are used, which
keeps the ranking sensible (every weight has the sign one expects) but not calibrated: re-fit
with ``--model`` to calibrate another model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

LOGIT_CLIP = 6.0


def logit(p: float) -> float:
    p = min(1.0 - 1e-6, max(1e-6, p))
    return max(-LOGIT_CLIP, min(LOGIT_CLIP, math.log(p / (1.0 - p))))


@dataclass(frozen=True)
class LogisticCalibration:
    """``score = sigmoid(intercept + sum(weight * feature))``; probabilities enter as logits."""

    intercept: float
    weights: Mapping[str, float]
    logit_features: frozenset[str]
    """Features that are probabilities, used as log-odds."""
    fallback: Mapping[str, float] = field(default_factory=dict)
    """A missing feature (a failed probe, a provider without log-probabilities) takes this value
    (its mean on the development split), so the others still give a score."""
    threshold: float = 0.5
    """The score at or above which the verdict is "yes", chosen on the development split."""
    fitted_on: str = ""

    def features_used(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def __call__(self, signals: Mapping[str, float]) -> float:
        z = self.intercept
        for name, weight in self.weights.items():
            value = signals.get(name, self.fallback.get(name))
            if value is None:
                continue
            z += weight * (logit(value) if name in self.logit_features else value)
        return 1.0 / (1.0 + math.exp(-z))
