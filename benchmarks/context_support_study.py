"""Does a length-free summary of the per-token context support transfer to the test splits?

The shipped calibration weighs ``pmi_min``, the response's least supported token, whose
extreme grows with the response's length; on HaluEval-QA the hallucinated answers are about
three times longer than the right ones, so part of its 0.99 could be length. This study reads
the per-token PMIs that ``context_support_tokens.py`` saved (no model call), and for each
statistic that does not grow with length reports:

- its AUROC on the development split (HaluEval-QA), and its AUROC over the length-matched pairs
  only (a right and a hallucinated answer whose token counts are within 1.5x of each other),
  which tells whether the signal is there once length is taken away;
- the same figure on the dialogue and summarization test splits, read once after the choice.

The statistics and the combination were chosen on the development split only; the test
splits are printed beside them, never used to choose.

    python benchmarks/context_support_study.py
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common import fmt_auroc, write_result
from fit_calibration import fit_logistic

RESULTS = Path(__file__).parent / "results"
MATCH_RATIO = 1.5


def _low_fifth(pmi: np.ndarray) -> float:
    k = max(1, math.ceil(0.2 * len(pmi)))
    return float(np.sort(pmi)[:k].mean())


STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean PMI": lambda p: float(p.mean()),
    "mean of the lowest fifth": _low_fifth,
    "10th percentile": lambda p: float(np.quantile(p, 0.1)),
    "mean negative part": lambda p: float(np.minimum(p, 0).mean()),
    "mean, clipped to ±3": lambda p: float(np.clip(p, -3, 3).mean()),
    "share of tokens with PMI ≥ -1": lambda p: float((p >= -1).mean()),
    "least supported token (pmi_min; grows with length)": lambda p: float(p.min()),
    "shorter response (baseline)": lambda p: -float(len(p)),
}
COMBINED = ("mean PMI", "mean of the lowest fifth")
"""The two statistics with the best length-matched AUROC on the dev split that are not
near-copies of each other (the lowest fifth, the 10th percentile and the negative part agree to
within 0.006 there)."""


def load(split: str, model_slug: str) -> list[dict[str, Any]]:
    path = RESULTS / f"context_support_{split}_{model_slug}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("pmi")]


def matched_auroc(scores: Sequence[float], labels: Sequence[int], lengths: Sequence[int]):
    """AUROC over the (right, hallucinated) pairs whose token counts are within MATCH_RATIO."""
    wins = pairs = 0.0
    for s_pos, y_pos, n_pos in zip(scores, labels, lengths, strict=True):
        if y_pos != 1:
            continue
        for s_neg, y_neg, n_neg in zip(scores, labels, lengths, strict=True):
            if y_neg == 0 and abs(math.log(n_pos / n_neg)) <= math.log(MATCH_RATIO):
                pairs += 1
                wins += 1.0 if s_pos > s_neg else 0.5 if s_pos == s_neg else 0.0
    return (wins / pairs if pairs else None), int(pairs)


def _table(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[STATISTICS[name](np.array(r["pmi"])) for name in COMBINED] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-slug", default="local__default")
    args = parser.parse_args()
    dev = load("dev", args.model_slug)
    tests = {split: load(split, args.model_slug) for split in ("dialogue", "summarization")}
    y_dev = [r["label"] for r in dev]
    n_dev = [len(r["pmi"]) for r in dev]
    lines = [
        f"# Length-free context-support statistics: {args.model_slug}",
        "",
        f"Per-token PMIs saved by `context_support_tokens.py` (dev {len(dev)}, "
        + ", ".join(f"{s} {len(r)}" for s, r in tests.items())
        + " responses); no model call. Length-matched: right/hallucinated pairs whose token "
        f"counts are within {MATCH_RATIO}x (`{matched_auroc([0] * len(dev), y_dev, n_dev)[1]}` "
        "such pairs on dev). Chosen on dev only; the test columns were read once, after.",
        "",
        "| statistic | dev AUROC | dev, length-matched | dialogue (test) | summarization (test) |",
        "|---|---|---|---|---|",
    ]
    for name, statistic in STATISTICS.items():
        dev_scores = [statistic(np.array(r["pmi"])) for r in dev]
        matched, _ = matched_auroc(dev_scores, y_dev, n_dev)
        cells = [fmt_auroc(dev_scores, y_dev), f"{matched:.3f}" if matched is not None else "n/a"]
        for rows in tests.values():
            cells.append(
                fmt_auroc([statistic(np.array(r["pmi"])) for r in rows], [r["label"] for r in rows])
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    weights = fit_logistic(np.hstack([np.ones((len(dev), 1)), _table(dev)]), np.array(y_dev))

    def combined(rows: list[dict[str, Any]]) -> list[float]:
        return list(np.hstack([np.ones((len(rows), 1)), _table(rows)]) @ weights)

    matched, _ = matched_auroc(combined(dev), y_dev, n_dev)
    cells = [fmt_auroc(combined(dev), y_dev), f"{matched:.3f}"]
    cells += [fmt_auroc(combined(rows), [r["label"] for r in rows]) for rows in tests.values()]
    lines.append(f"| logistic fit of {' + '.join(COMBINED)} on dev | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    path = write_result(f"context_support_study_{args.model_slug}.md", lines)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
