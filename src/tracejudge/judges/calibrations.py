"""The fitted calibrations, per judge model. Written by ``benchmarks/judge_quality.py --fit``.

Each entry records what it was fitted on. A model without an entry uses the ``local:/default``
weights: the ranking of responses stays sensible, the threshold is then only a guess.
"""

from __future__ import annotations

from tracejudge.judges.calibration import LogisticCalibration

GROUNDEDNESS: dict[str, LogisticCalibration] = {
    "local:/default": LogisticCalibration(
        intercept=0.0,
        weights={
            "reasoned": 0.3,
            "supported": 0.3,
            "unsupported": 0.3,
            "unsupported_words": -2.0,
            "unsupported_number": -1.0,
            "unsupported_names": -1.0,
        },
        logit_features=frozenset({"reasoned", "supported", "unsupported"}),
        fallback={"reasoned": 0.5, "supported": 0.5, "unsupported": 0.5},
        threshold=0.5,
        fitted_on="provisional (not fitted)",
    ),
}
DEFAULT_MODEL = "local:/default"


def groundedness_calibration(model_uri: str) -> LogisticCalibration:
    """The calibration fitted for ``model_uri``, else the default model's."""
    return GROUNDEDNESS.get(model_uri, GROUNDEDNESS[DEFAULT_MODEL])
