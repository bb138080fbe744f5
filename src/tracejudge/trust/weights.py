"""How much each part of the trust score counts, per model.

Cleanlab's TLM publishes one weight per part for each model it supports, because how much a
model's self-reflection or its resampled answers are worth depends on the model: a large model's
verdict on an answer is informative, a 1.5B model's much less so. The defaults are TLM's kind of
balance (reflection first); a model measured here gets weights chosen on a development split by
``benchmarks/trust_quality.py --split dev`` then ``benchmarks/fit_trust_weights.py``, which
maximise the AUROC of the combined score over both kinds of item (given responses and the
model's own), and are checked on a separate test split.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_WEIGHTS: dict[str, float] = {
    "self_reflection": 0.45,
    "consistency": 0.30,
    "exact_match": 0.05,
    "token_probability": 0.20,
}
# local:/default (Qwen2.5-Coder-1.5B): its resampled answers tell right from wrong far better than
# its self-reflections on its own answers (dev split, 40 generated + 30 given items, worst-kind
# AUROC 0.839 with the defaults, 0.942 with these; results/trust_weights_local__default.md)
FITTED_WEIGHTS: dict[str, dict[str, float]] = {
    "local:/default": {
        "self_reflection": 0.25,
        "consistency": 0.5,
        "exact_match": 0.25,
        "token_probability": 0.0,
    },
}
"""Weights chosen on a development split for one model (``fit_trust_weights.py`` writes them)."""


def default_weights(model_uri: str) -> dict[str, float]:
    """The weights fitted for ``model_uri``, else the defaults."""
    return dict(FITTED_WEIGHTS.get(model_uri, DEFAULT_WEIGHTS))


def merged(weights: Mapping[str, float], model_uri: str) -> dict[str, float]:
    """A caller's weights over the model's: parts the caller does not name keep the model's."""
    return {**default_weights(model_uri), **weights}
