"""Fit the groundedness calibration on the development signals that judge_quality.py saved.

    python benchmarks/fit_calibration.py results/judge_quality_dev_candidates_local__default.jsonl \
        results/judge_quality_dev-longform_candidates_local__default.jsonl [--model URI] [--write]

Each file is one development part (HaluEval-QA answers; the long-form replies and summaries
written for this project). A logistic regression with a small L2 penalty, fitted by Newton's
method on all parts together, is scored for each candidate feature set by 5-fold
cross-validated AUROC *on each part separately* (folds grouped by row, so a row's grounded and
ungrounded response never sit on both sides). A set is judged by its worst part: a verdict
that only holds on one kind of response is what this fit exists to avoid. Only sets that need
at most 3 model calls on a one-sentence answer are eligible; among the eligible sets within
0.005 of the best worst-part AUROC, the one with the fewest features is chosen, refitted on all
the rows; its threshold maximises accuracy over all the rows. ``--write`` writes it into
``src/tracejudge/judges/calibrations.py``.
"""

from __future__ import annotations

import argparse
import json
import pprint
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common import auroc
from tracejudge.judges.builtin import CLAIM_SIGNALS, CONTEXT_SUPPORT_SIGNALS
from tracejudge.judges.calibration import LogisticCalibration, logit
from tracejudge.judges.calibrations import GROUNDEDNESS, GROUNDEDNESS_WRITTEN_ONLY

PROBES = ("supported", "unsupported", "correct")
PROBABILITIES = frozenset({"reasoned", *PROBES, *CLAIM_SIGNALS})
"""Signals that are probabilities: they enter the logistic model as log-odds."""
LEXICAL = ("unsupported_words", "unsupported_number", "unsupported_names")
READS = CONTEXT_SUPPORT_SIGNALS
"""Context support read by the model (two scoring passes): models that can read replies only."""
PMI_CHOICES = {
    "mean + weakest token": ("pmi_mean", "pmi_min"),
    "mean + weakest word": ("pmi_mean", "pmi_word_min"),
    "mean + weakest sentence": ("pmi_mean", "pmi_sentence_min"),
    "weakest word + weakest sentence": ("pmi_word_min", "pmi_sentence_min"),
}


def _feature_sets() -> dict[str, tuple[str, ...]]:
    """Lexical signals alone; the written verdict with up to two probes; the claim checks; the
    context-support reads (each choice of statistics); and their combinations, each with and
    without the lexical signals."""
    bases: dict[str, tuple[str, ...]] = {"": ()}
    choices = (
        [()]
        + [(p,) for p in PROBES]
        + [(a, b) for i, a in enumerate(PROBES) for b in PROBES[i + 1 :]]
    )
    for chosen in choices:
        bases[" + ".join(("written", *chosen))] = ("reasoned", *chosen)
    bases["claims"] = CLAIM_SIGNALS
    bases["written + claims"] = ("reasoned", *CLAIM_SIGNALS)
    for label, pmi in PMI_CHOICES.items():
        bases[f"reads ({label})"] = pmi
        bases[f"claims + reads ({label})"] = (*CLAIM_SIGNALS, *pmi)
        bases[f"written + reads ({label})"] = ("reasoned", *pmi)
    sets: dict[str, tuple[str, ...]] = {}
    for label, features in bases.items():
        if features:
            sets[label] = features
        sets[f"{label} + lexical" if label else "lexical only"] = (*features, *LEXICAL)
    return sets


FEATURE_SETS = _feature_sets()


def calls_for(features: Sequence[str], sentences: float = 1.0) -> float:
    """Model calls per judgement: the written verdict, each probe, one check per sentence, two
    reads for context support."""
    return (
        ("reasoned" in features)
        + sum(1 for f in features if f in PROBES)
        + (sentences if any(f in CLAIM_SIGNALS for f in features) else 0)
        + (2 if any(f in READS for f in features) else 0)
    )


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


def cross_validated_scores(rows, features, fallback, folds: int = 5) -> np.ndarray:
    """Each row's score from a model fitted on the folds it is not in (folds grouped by row)."""
    groups = sorted({str(r["row"]) for r in rows})
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    scores = np.zeros(len(rows))
    y = np.array([r["label"] for r in rows], dtype=float)
    x = _matrix(rows, features, fallback)
    for k in range(folds):
        test = np.array([fold_of[str(r["row"])] == k for r in rows])
        w = fit_logistic(x[~test], y[~test])
        scores[test] = x[test] @ w
    return scores


def best_threshold(probabilities: np.ndarray, y: np.ndarray) -> float:
    candidates = sorted(set(np.round(probabilities, 3)))
    best = max(candidates, key=lambda t: ((probabilities >= t) == (y == 1)).mean())
    return float(best)


TIE = 0.005
"""Feature sets whose worst-part AUROC is within this of the best count as equally good; the
one with the fewest features is chosen among them (fewer weights carry over better)."""


def fit(parts: dict[str, list[dict[str, Any]]], model: str) -> tuple[list[str], dict[str, Any]]:
    """Score every feature set, choose one for models that read replies and one for those that
    cannot, and return the report lines and the chosen calibrations."""
    rows = [r for part in parts.values() for r in part]
    names = list(parts)
    part_of = np.array([name for name, part in parts.items() for _ in part])
    y = np.array([r["label"] for r in rows])
    fallback = {
        f: float(np.mean([r[f] for r in rows if f in r])) if any(f in r for r in rows) else 0.5
        for f in (*PROBABILITIES, *LEXICAL, *READS)
    }
    sentences = {
        name: float(np.mean([r.get("sentences", 1) for r in part])) for name, part in parts.items()
    }
    lines = [
        "## Calibration fitted on the development parts",
        "",
        f"Parts: {', '.join(f'{k} ({len(v)} responses)' for k, v in parts.items())}. "
        "AUROC of each feature set, 5-fold cross-validated, on each part; a set is judged by its "
        "worst part.",
        "",
        f"| feature set | model calls ({' / '.join(names)}) | "
        + " | ".join(f"AUROC {n}" for n in names)
        + " | worst |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    results: dict[str, tuple[float, tuple[str, ...], float]] = {}
    for label, features in FEATURE_SETS.items():
        if not all(any(f in r for r in rows) for f in features):
            continue
        scores = cross_validated_scores(rows, features, fallback)
        per_part = [
            auroc(list(scores[part_of == n]), [int(v) for v in y[part_of == n]]) or 0.0
            for n in names
        ]
        worst = min(per_part)
        calls = calls_for(features, 1.0)
        results[label] = (worst, features, calls)
        call_cells = " / ".join(f"{calls_for(features, sentences[n]):.1f}" for n in names)
        lines.append(
            f"| {label} | {call_cells} | "
            + " | ".join(f"{v:.3f}" for v in per_part)
            + f" | {worst:.3f} |"
        )
    eligible = {k: v for k, v in results.items() if v[2] <= 3}
    written_only = {k: v for k, v in eligible.items() if not any(f in READS for f in v[1])}
    chosen: dict[str, Any] = {}
    for kind, candidates in (("reads", eligible), ("written_only", written_only)):
        if not candidates:
            continue
        label, (value, features, calls) = _simplest_of_the_best(candidates)
        calibration, accuracy = _refit(rows, features, fallback, label, value, parts)
        chosen[kind] = calibration
        who = "models that read replies" if kind == "reads" else "models that cannot"
        lines += [
            "",
            f"Chosen for {who}: **{label}** ({calls:g} model calls on a one-sentence answer), "
            f"worst-part cross-validated AUROC {value:.3f}; threshold {calibration.threshold:g} "
            f"(accuracy over all the rows {accuracy:.3f}).",
            "",
            "```",
            pprint.pformat(calibration, width=100),
            "```",
        ]
    return lines, chosen


def _simplest_of_the_best(candidates: dict[str, tuple[float, tuple[str, ...], float]]):
    best = max(v[0] for v in candidates.values())
    close = [kv for kv in candidates.items() if kv[1][0] >= best - TIE]
    return min(close, key=lambda kv: (len(kv[1][1]), -kv[1][0]))


def _refit(rows, features, fallback, label, value, parts) -> tuple[LogisticCalibration, float]:
    y = np.array([r["label"] for r in rows], dtype=float)
    x = _matrix(rows, features, fallback)
    w = fit_logistic(x, y)
    probabilities = 1 / (1 + np.exp(-(x @ w)))
    threshold = best_threshold(probabilities, y)
    described = " + ".join(f"{k} ({len(v)})" for k, v in parts.items())
    calibration = LogisticCalibration(
        intercept=round(float(w[0]), 4),
        weights={f: round(float(v), 4) for f, v in zip(features, w[1:], strict=True)},
        logit_features=frozenset(f for f in features if f in PROBABILITIES),
        fallback={f: round(fallback[f], 4) for f in features},
        threshold=threshold,
        fitted_on=f"development parts {described} responses; {label}; worst-part "
        f"cross-validated AUROC {value:.3f}",
    )
    return calibration, float(((probabilities >= threshold) == (y == 1)).mean())


def write(model: str, chosen: dict[str, LogisticCalibration]) -> None:
    """Put the chosen calibrations for ``model`` into calibrations.py."""
    if "reads" in chosen:
        GROUNDEDNESS[model] = chosen["reads"]
    if "written_only" in chosen:
        GROUNDEDNESS_WRITTEN_ONLY[model] = chosen["written_only"]
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


def load_part(path: Path) -> tuple[str, list[dict[str, Any]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    name = str(rows[0]["row"]).split(":")[0] if rows and ":" in str(rows[0]["row"]) else path.stem
    return name, rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("signals", type=Path, nargs="+", help="a .jsonl judge_quality.py wrote")
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--write", action="store_true", help="write the chosen calibrations")
    args = parser.parse_args()
    parts = dict(load_part(p) for p in args.signals)
    if any(name not in ("dev", "dev-longform") for name in parts):
        sys.exit("Fit on the development parts only (dev, dev-longform): never on a test split.")
    lines, chosen = fit(parts, args.model)
    print("\n".join(lines))
    if args.write:
        write(args.model, chosen)
        print(f"\n(written to {CALIBRATIONS_FILE})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
