"""Choose the trust score's per-model weights, and its early stop, on the development split.

    python benchmarks/trust_quality.py --split dev --n 30 --presets medium
    python benchmarks/fit_trust_weights.py results/trust_parts_dev_local__default.jsonl \
        [--model local:/default] [--write]

The parts each dev item got (saved by trust_quality.py from ``medium`` with early stop off) are
recombined with every weighting on a grid (steps of 0.05 over the four parts, summing to 1);
the weighting with the best *worst* AUROC over the two kinds of item (given responses, the
model's own) wins, ties going to the one nearest the defaults. Early stopping is simulated
exactly on the same records (the checks are deterministic and cached, so a scorer that stops
early makes a subset of the same calls): for each rule, how often it fires, the calls it saves
and the AUROC it costs. ``--write`` puts the weights into ``tracejudge/trust/weights.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from common import auroc
from tracejudge.trust.combine import combine, mean, unanimous
from tracejudge.trust.weights import DEFAULT_WEIGHTS, FITTED_WEIGHTS

PARTS = ("self_reflection", "consistency", "exact_match", "token_probability")
WEIGHTS_FILE = Path(__file__).parents[1] / "src" / "tracejudge" / "trust" / "weights.py"
STEP = 0.05


def grid() -> list[dict[str, float]]:
    steps = round(1 / STEP)
    out = []
    for a, b, c in itertools.product(range(steps + 1), repeat=3):
        d = steps - a - b - c
        if d >= 0:
            out.append(dict(zip(PARTS, (a * STEP, b * STEP, c * STEP, d * STEP), strict=True)))
    return out


def scores(rows: list[dict[str, Any]], weights: dict[str, float]) -> list[float | None]:
    return [combine({p: r.get(p) for p in PARTS}, weights) for r in rows]


def part_auroc(rows: list[dict[str, Any]], weights: dict[str, float]) -> float:
    pairs = [
        (s, r["label"]) for s, r in zip(scores(rows, weights), rows, strict=True) if s is not None
    ]
    return auroc([p[0] for p in pairs], [p[1] for p in pairs]) or 0.0


def distance(weights: dict[str, float]) -> float:
    return sum(abs(weights[p] - DEFAULT_WEIGHTS[p]) for p in PARTS)


def fit(kinds: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, float], dict[str, float]]:
    """The weighting with the best worst-kind AUROC (nearest the defaults among ties)."""
    best: tuple[float, float, dict[str, float]] | None = None
    for w in grid():
        worst = min(part_auroc(rows, w) for rows in kinds.values())
        key = (round(worst, 4), -distance(w))
        if best is None or key > best[:2]:
            best = (key[0], key[1], w)
    assert best is not None
    return best[2], {k: part_auroc(rows, best[2]) for k, rows in kinds.items()}


def cross_validated(kinds: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Two-fold check of the fitting itself: weights fitted on half the items (every other
    right and every other wrong one of each kind, so a question's right and hallucinated
    answers fall in the same half), scored on the other half, and the reverse; the mean
    held-out AUROC per kind next to the defaults' and each part's alone on the same halves."""

    def half(rows: list[dict[str, Any]], f: int) -> list[dict[str, Any]]:
        return [r for y in (1, 0) for r in [r for r in rows if r["label"] == y][f::2]]

    folds = [{k: half(rows, f) for k, rows in kinds.items()} for f in (0, 1)]
    candidates: dict[str, list[dict[str, float]]] = {"fitted on the other half": []}
    candidates["defaults"] = [dict(DEFAULT_WEIGHTS)] * 2
    for p in PARTS:
        candidates[f"{p} alone"] = [{q: float(q == p) for q in PARTS}] * 2
    for f in (0, 1):
        candidates["fitted on the other half"].append(fit(folds[1 - f])[0])
    lines = [
        "| weights (two-fold, held-out half) | " + " | ".join(f"AUROC {k}" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for label, per_fold in candidates.items():
        cells = []
        for k in kinds:
            if all(s is None for s in scores(kinds[k], per_fold[0])):
                cells.append("n/a")  # a part this kind of item never has
                continue
            values = [part_auroc(folds[f][k], per_fold[f]) for f in (0, 1)]
            cells.append(f"{sum(values) / 2:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def early_stop_rules() -> dict[str, Any]:
    """Rules that skip some checks, as functions of what an item got: each returns how many
    consistency samples the scorer would draw and whether it would ask for the
    self-reflections (what it skips is not asked)."""

    def reflections_extreme(margin: float):
        def rule(row: dict[str, Any]) -> tuple[int, bool]:
            extreme = unanimous(list(row["reflections"].values()), margin)
            return (0 if extreme else len(row["samples"])), True

        return rule

    def first_two_agree(row: dict[str, Any]) -> tuple[int, bool]:
        """Stop after two samples whose final answers both match the response exactly (or both
        do not): a third rarely changes the verdict."""
        exact = [s["exact_match"] for s in row["samples"]]
        if len(exact) >= 3 and exact[0] is not None and exact[0] == exact[1]:
            return 2, True
        return len(exact), True

    def samples_unanimous(margin: float):
        """Samples first; when every one agrees with the response (similarity within
        ``margin`` of 1) or every one contradicts it (within ``margin`` of 0), the
        self-reflections are not asked."""

        def rule(row: dict[str, Any]) -> tuple[int, bool]:
            agree = unanimous([s["similarity"] for s in row["samples"]], margin)
            return len(row["samples"]), not agree

        return rule

    return {
        "reflections unanimous within 0.1 of 0 or 1 (the rule before)": reflections_extreme(0.1),
        "reflections unanimous within 0.2": reflections_extreme(0.2),
        "reflections unanimous within 0.3": reflections_extreme(0.3),
        "the first two samples agree on an exact match": first_two_agree,
        "samples unanimous within 0.1: reflections skipped": samples_unanimous(0.1),
        "samples unanimous within 0.25: reflections skipped (the current rule)": samples_unanimous(
            0.25
        ),
    }


def stopped(row: dict[str, Any], drawn: int, reflected: bool) -> dict[str, Any]:
    """The item's parts had the scorer drawn only its first ``drawn`` samples, and asked for
    the self-reflections only if ``reflected``."""
    kept = row["samples"][:drawn]
    out = dict(row)
    out["consistency"] = mean([s["similarity"] for s in kept]) if kept else None
    out["exact_match"] = mean([s["exact_match"] for s in kept]) if kept else None
    if not reflected:
        out["self_reflection"] = None
    return out


def early_stop_table(
    kinds: dict[str, list[dict[str, Any]]], weights: dict[str, float]
) -> list[str]:
    names = list(kinds)
    lines = [
        "| early stop rule | "
        + " | ".join(
            f"{k}: fires / calls saved per item / AUROC (without: {part_auroc(kinds[k], weights):.3f})"
            for k in names
        )
        + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, rule in early_stop_rules().items():
        cells = []
        for k in names:
            rows = kinds[k]
            plans = [rule(r) for r in rows]
            fired = saved = 0
            for (drawn, reflected), r in zip(plans, rows, strict=True):
                skipped = len(r["samples"]) - drawn + (0 if reflected else len(r["reflections"]))
                fired += skipped > 0
                saved += skipped
            value = part_auroc(
                [stopped(r, d, f) for r, (d, f) in zip(rows, plans, strict=True)], weights
            )
            cells.append(f"{fired}/{len(rows)} / {saved / len(rows):.2f} / {value:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write(model: str, weights: dict[str, float]) -> None:
    FITTED_WEIGHTS[model] = weights
    text = WEIGHTS_FILE.read_text(encoding="utf-8")
    start = text.index("FITTED_WEIGHTS: dict[str, dict[str, float]] = ")
    end = text.index('"""Weights chosen on a development split')
    body = "FITTED_WEIGHTS: dict[str, dict[str, float]] = {\n"
    for uri, w in FITTED_WEIGHTS.items():
        parts = ", ".join(f'"{p}": {round(w[p], 2)!r}' for p in PARTS)
        body += f'    "{uri}": {{{parts}}},\n'  # as ruff formats it
    body += "}\n"
    WEIGHTS_FILE.write_text(text[:start] + body + text[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", type=Path, help="trust_parts_dev_*.jsonl")
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if "_dev" not in args.parts.name:
        sys.exit("Fit on the dev split's parts only (trust_parts_dev_*.jsonl).")
    rows = [json.loads(line) for line in args.parts.read_text().splitlines() if line.strip()]
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        kinds.setdefault(r["part"], []).append(r)
    chosen, per_kind = fit(kinds)
    default_aurocs = {k: part_auroc(v, DEFAULT_WEIGHTS) for k, v in kinds.items()}
    lines = [
        f"## Trust weights for {args.model}, chosen on the dev split",
        "",
        "Items: "
        + ", ".join(f"{k} {len(v)} ({sum(r['label'] for r in v)} right)" for k, v in kinds.items())
        + ".",
        "",
        "| weights | " + " | ".join(f"AUROC {k}" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
        f"| defaults {DEFAULT_WEIGHTS} | "
        + " | ".join(f"{default_aurocs[k]:.3f}" for k in kinds)
        + " |",
        f"| **chosen** {chosen} | " + " | ".join(f"**{per_kind[k]:.3f}**" for k in kinds) + " |",
    ]
    for p in PARTS:
        alone = {q: float(q == p) for q in PARTS}
        lines.append(
            f"| {p} alone | "
            + " | ".join(f"{part_auroc(v, alone):.3f}" for v in kinds.values())
            + " |"
        )
    lines += ["", "Is the fitting itself worth it? Held out:", "", *cross_validated(kinds)]
    lines += ["", "Early stopping, simulated on the same records with the chosen weights:", ""]
    lines += early_stop_table(kinds, chosen)
    print("\n".join(lines))
    if args.write:
        write(args.model, chosen)
        print(f"\n(written to {WEIGHTS_FILE})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
