"""The fitted calibrations, per judge model. Written by ``benchmarks/judge_quality.py --fit``.

Each entry records what it was fitted on. A model without an entry uses the ``local:/default``
weights: the ranking of responses stays sensible, the threshold is then only a guess.
"""

from __future__ import annotations

from tracejudge.judges.calibration import LogisticCalibration

GROUNDEDNESS: dict[str, LogisticCalibration] = {
    "local:/default": LogisticCalibration(
        intercept=-0.4451,
        weights={
            "reasoned": 0.1469,
            "unsupported": 1.5519,
            "unsupported_words": -2.0551,
            "unsupported_number": -1.6538,
            "unsupported_names": -2.1541,
        },
        logit_features=frozenset(["reasoned", "unsupported"]),
        fallback={
            "reasoned": 0.9153,
            "unsupported": 0.5249,
            "unsupported_words": 0.1451,
            "unsupported_number": 0.07,
            "unsupported_names": 0.0718,
        },
        threshold=0.571,
        fitted_on="HaluEval-QA dev split, 200 responses (seed 7), reasoned + unsupported + lexical, cross-validated AUROC 0.858",
    ),
}
DEFAULT_MODEL = "local:/default"


def groundedness_calibration(model_uri: str) -> LogisticCalibration:
    """The calibration fitted for ``model_uri``, else the default model's."""
    return GROUNDEDNESS.get(model_uri, GROUNDEDNESS[DEFAULT_MODEL])
