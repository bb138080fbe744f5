"""Fit the groundedness calibration on the development split's signals (used by judge_quality.py).

A logistic regression with a small L2 penalty, fitted by Newton's method. Each candidate
feature set is scored by 5-fold cross-validated AUROC, folds grouped by HaluEval row (a row's
right and hallucinated response never sit on both sides of a split). Only sets that need at
most 3 model calls (the reasoned verdict, probes, two reads for context support) are eligible.
Among the sets within 0.005 of the best the one with the fewest features is chosen, refitted on
the whole split; its threshold maximises accuracy on the split.
"""

from __future__ import annotations

import pprint
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common import auroc
from tracejudge.judges.builtin import CONTEXT_SUPPORT_SIGNALS
from tracejudge.judges.calibration import LogisticCalibration, logit
from tracejudge.judges.calibrations import GROUNDEDNESS, GROUNDEDNESS_WRITTEN_ONLY

PROBABILITIES = frozenset({"reasoned", "supported", "unsupported", "correct"})
LEXICAL = ("unsupported_words", "unsupported_number", "unsupported_names")
LIKELIHOOD = CONTEXT_SUPPORT_SIGNALS
"""Context support read by the model (two scoring passes): models that can read replies only."""


def _feature_sets() -> dict[str, tuple[str, ...]]:
    """The reasoned verdict (always asked: it writes the rationale) with every choice of up to
    two probes, each with and without the lexical signals; the lexical signals alone; and the
    context-support reads, alone or with the reasoned verdict and the lexical signals."""
    sets: dict[str, tuple[str, ...]] = {"lexical only": LEXICAL}
    probes = ("supported", "unsupported", "correct")
    choices = (
        [()]
        + [(p,) for p in probes]
        + [(a, b) for i, a in enumerate(probes) for b in probes[i + 1 :]]
    )
    for chosen in choices:
        for lexical in ((), LEXICAL):
            name = " + ".join(("reasoned", *chosen)) + (" + lexical" if lexical else "")
            sets[name] = ("reasoned", *chosen, *lexical)
    sets["all probes + lexical (4 calls: not eligible)"] = ("reasoned", *probes, *LEXICAL)
    sets["context support"] = LIKELIHOOD
    sets["context support + lexical"] = (*LIKELIHOOD, *LEXICAL)
    sets["reasoned + context support"] = ("reasoned", *LIKELIHOOD)
    sets["reasoned + context support + lexical"] = ("reasoned", *LIKELIHOOD, *LEXICAL)
    sets["reasoned + unsupported + context support (4 calls: not eligible)"] = (
        "reasoned",
        "unsupported",
        *LIKELIHOOD,
    )
    return sets


def calls_for(features: Sequence[str]) -> int:
    """Model calls per judgement: the reasoned verdict, each probe, two reads for support."""
    probes = sum(1 for f in features if f in PROBABILITIES - {"reasoned"})
    return 1 + probes + (2 if any(f in LIKELIHOOD for f in features) else 0)


FEATURE_SETS = _feature_sets()
L2 = 1.0
CALIBRATIONS_FILE = Path(__file__).parents[1] / "src" / "tracejudge" / "judges" / "calibrations.py"


def _matrix(rows: Sequence[dict[str, Any]], features: Sequence[str], fallback: dict[str, float]):
    x = np.array(
        [
            [
                logit(r.get(f, fallback[f])) if f in PROBABILITIES else float(r.get(f, fallback[f]))
                for f in features
            ]
            for r in rows
        ],
        dtype=float,
    )
    return np.hstack([np.ones((len(rows), 1)), x])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    w = np.zeros(x.shape[1])
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def cross_validated_auroc(rows, features, fallback, folds: int = 5) -> float:
    groups = sorted({r["row"] for r in rows})
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    scores = np.zeros(len(rows))
    y = np.array([r["label"] for r in rows], dtype=float)
    x = _matrix(rows, features, fallback)
    for k in range(folds):
        test = np.array([fold_of[r["row"]] == k for r in rows])
        w = fit_logistic(x[~test], y[~test])
        scores[test] = x[test] @ w
    return auroc(list(scores), [int(v) for v in y]) or 0.0


def best_threshold(probabilities: np.ndarray, y: np.ndarray) -> float:
    candidates = sorted(set(np.round(probabilities, 3)))
    best = max(candidates, key=lambda t: ((probabilities >= t) == (y == 1)).mean())
    return float(best)


def fit_and_write(rows: list[dict[str, Any]], model: str, n: int, seed: int) -> list[str]:
    """Score every feature set by cross-validation, then refit the best eligible one (at most 3
    model calls) for models that read replies and the best without reads for those that do not,
    and write both into ``calibrations.py``."""
    fallback = {
        f: float(np.mean([r[f] for r in rows if f in r])) if any(f in r for r in rows) else 0.5
        for f in (*PROBABILITIES, *LEXICAL, *LIKELIHOOD)
    }
    lines = [
        "## Calibration fitted on this split",
        "",
        "| feature set | model calls | AUROC, 5-fold cross-validated |",
        "|---|---|---|",
    ]
    results = {}
    for label, features in FEATURE_SETS.items():
        if not all(any(f in r for r in rows) for f in features):
            continue
        value = cross_validated_auroc(rows, features, fallback)
        calls = calls_for(features)
        results[label] = (value, features, calls)
        lines.append(f"| {label} | {calls} | {value:.3f} |")
    eligible = {k: v for k, v in results.items() if v[2] <= 3}
    written_only = {k: v for k, v in eligible.items() if not any(f in LIKELIHOOD for f in v[1])}
    for table, candidates in ((GROUNDEDNESS, eligible), (GROUNDEDNESS_WRITTEN_ONLY, written_only)):
        if not candidates:
            continue
        label, (value, features, calls) = _simplest_of_the_best(candidates)
        calibration, accuracy = _refit(rows, features, fallback, label, value, n, seed)
        table[model] = calibration
        kind = "models that read replies" if table is GROUNDEDNESS else "models that cannot"
        lines += [
            "",
            f"Chosen for {kind}: **{label}** ({calls} model calls), cross-validated AUROC "
            f"{value:.3f}; threshold {calibration.threshold:g} (accuracy on the split "
            f"{accuracy:.3f}).",
            "",
            "```",
            pprint.pformat(calibration, width=100),
            "```",
        ]
    _write()
    return lines


TIE = 0.005
"""Feature sets whose cross-validated AUROC is within this of the best count as equally good;
the one with the fewest features is chosen among them (fewer weights fitted to one data set
carry over better to others)."""


def _simplest_of_the_best(candidates: dict[str, tuple[float, tuple[str, ...], int]]):
    best = max(v[0] for v in candidates.values())
    close = [kv for kv in candidates.items() if kv[1][0] >= best - TIE]
    return min(close, key=lambda kv: (len(kv[1][1]), -kv[1][0]))


def _refit(rows, features, fallback, label, value, n, seed) -> tuple[LogisticCalibration, float]:
    y = np.array([r["label"] for r in rows], dtype=float)
    x = _matrix(rows, features, fallback)
    w = fit_logistic(x, y)
    probabilities = 1 / (1 + np.exp(-(x @ w)))
    threshold = best_threshold(probabilities, y)
    calibration = LogisticCalibration(
        intercept=round(float(w[0]), 4),
        weights={f: round(float(v), 4) for f, v in zip(features, w[1:], strict=True)},
        logit_features=frozenset(f for f in features if f in PROBABILITIES),
        fallback={f: round(fallback[f], 4) for f in features},
        threshold=threshold,
        fitted_on=f"HaluEval-QA dev split, {n} responses (seed {seed}), {label}, "
        f"cross-validated AUROC {value:.3f}",
    )
    return calibration, float(((probabilities >= threshold) == (y == 1)).mean())


def _write() -> None:
    text = CALIBRATIONS_FILE.read_text(encoding="utf-8")
    head = text[: text.index("GROUNDEDNESS_WRITTEN_ONLY: dict[str, LogisticCalibration] = {")]
    tail = text[text.index("DEFAULT_MODEL = ") :]
    body: list[str] = []
    for name, entries in (
        ("GROUNDEDNESS_WRITTEN_ONLY", GROUNDEDNESS_WRITTEN_ONLY),
        ("GROUNDEDNESS", GROUNDEDNESS),
    ):
        body.append(f"{name}: dict[str, LogisticCalibration] = {{")
        for uri, c in entries.items():
            body += [
                f"    {uri!r}: LogisticCalibration(",
                f"        intercept={c.intercept!r},",
                f"        weights={dict(c.weights)!r},",
                f"        logit_features=frozenset({sorted(c.logit_features)!r}),",
                f"        fallback={dict(c.fallback)!r},",
                f"        threshold={c.threshold!r},",
                f"        fitted_on={c.fitted_on!r},",
                "    ),",
            ]
        body.append("}")
    CALIBRATIONS_FILE.write_text(head + "\n".join(body) + "\n" + tail, encoding="utf-8")


if __name__ == "__main__":  # refit from a run's saved signals: fit_calibration.py SIGNALS.jsonl
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Fit the calibration on saved dev signals.")
    parser.add_argument("signals", type=Path, help="the .jsonl judge_quality.py wrote")
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    saved = [json.loads(line) for line in args.signals.read_text().splitlines() if line.strip()]
    print("\n".join(fit_and_write(saved, args.model, args.n, args.seed)))
