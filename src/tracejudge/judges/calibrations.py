"""The fitted calibrations, per judge model. Written by ``benchmarks/judge_quality.py --fit``.

``GROUNDEDNESS`` holds calibrations that use the context-support signals a model gives when it
can read a reply's log-probabilities (:mod:`tracejudge.judges.likelihood`);
``GROUNDEDNESS_WRITTEN_ONLY`` those for models that cannot (hosted APIs), from the written
verdict, probes and lexical support alone. Each entry records what it was fitted on. A model
without an entry uses the ``local:/default`` weights: the ranking of responses stays sensible,
the threshold is then only a guess.
"""

from __future__ import annotations

from tracejudge.judges.calibration import LogisticCalibration

GROUNDEDNESS_WRITTEN_ONLY: dict[str, LogisticCalibration] = {
    "local:/default": LogisticCalibration(
        intercept=-0.4102,
        weights={
            "reasoned": 0.1402,
            "unsupported": 1.5404,
            "unsupported_words": -2.0512,
            "unsupported_number": -1.6521,
            "unsupported_names": -2.1611,
        },
        logit_features=frozenset(["reasoned", "unsupported"]),
        fallback={
            "reasoned": 0.9159,
            "unsupported": 0.5249,
            "unsupported_words": 0.1451,
            "unsupported_number": 0.07,
            "unsupported_names": 0.0718,
        },
        threshold=0.578,
        fitted_on="HaluEval-QA dev split, 200 responses (seed 7), reasoned + unsupported + lexical, cross-validated AUROC 0.858",
    ),
}
GROUNDEDNESS: dict[str, LogisticCalibration] = {
    "local:/default": LogisticCalibration(
        intercept=0.7562,
        weights={"pmi_mean": 1.2562, "pmi_min": 2.3817},
        logit_features=frozenset([]),
        fallback={"pmi_mean": 1.3607, "pmi_min": -1.6579},
        threshold=0.466,
        fitted_on="HaluEval-QA dev split, 200 responses (seed 7), context support, cross-validated AUROC 0.992",
    ),
}
DEFAULT_MODEL = "local:/default"


def groundedness_calibration(model_uri: str, reads: bool = True) -> LogisticCalibration:
    """The calibration fitted for ``model_uri``, else the default model's; ``reads``: whether
    the model can read a reply's log-probabilities (then the context-support signals are used)."""
    table = GROUNDEDNESS if reads and GROUNDEDNESS else GROUNDEDNESS_WRITTEN_ONLY
    return table.get(model_uri, table[DEFAULT_MODEL])
