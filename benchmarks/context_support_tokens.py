"""Per-token context support of HaluEval responses, saved for studying features offline.

Runs only the groundedness judge's two reads (the response scored with and without the
context, exactly as the judge calls them, so the call cache is shared with
``judge_quality.py``) and writes each item's tokens and per-token PMI to
``benchmarks/results/context_support_<split>_<model>.jsonl``, so new signals can be studied
without asking the model again. It also reports the AUROC and accuracy of the judge's score as
the fitted calibration computes it from these reads: when that calibration weighs only the
context-support signals (as ``local:/default``'s does), this is the judge's score exactly, at a
fraction of the time (the written verdict, which writes the rationale, is not generated).

    python benchmarks/context_support_tokens.py --split dev --n 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from common import fmt_auroc, write_result
from judge_quality import items_for
from tracejudge.judges.builtin import CONTEXT_SUPPORT_SIGNALS, grounded_spec
from tracejudge.judges.calibrations import groundedness_calibration
from tracejudge.judges.engine import prepare
from tracejudge.judges.likelihood import ContextSupport, context_support
from tracejudge.models import get_model
from tracejudge.store import set_tracking_uri

RESULTS = Path(__file__).parent / "results"


async def read_items(model, items, out: Path) -> list[ContextSupport | None]:
    started = time.perf_counter()
    supports: list[ContextSupport | None] = []
    with out.open("w") as f:
        for i, item in enumerate(items, 1):
            spec = grounded_spec(item["request"], item["response"], item["context"])
            prepared = prepare(spec, model)
            support = await context_support(
                model,
                {k: prepared.shown[k] for k in ("REQUEST", "CONTEXT")},
                prepared.blocks["RESPONSE"],
            )
            supports.append(support)
            row = {"label": item["label"], "row": item["row"]}
            if support is not None:
                row |= {"tokens": list(support.tokens), "pmi": [round(p, 4) for p in support.pmi]}
            f.write(json.dumps(row) + "\n")
            if i % 20 == 0:
                elapsed = time.perf_counter() - started
                print(f"  {i}/{len(items)} items, {elapsed:.0f} s", file=sys.stderr)
    return supports


def report(model_uri: str, split: str, items, supports, seconds: float) -> list[str]:
    """The calibrated score from the reads, and each signal alone, against the labels."""
    calibration = groundedness_calibration(model_uri, reads=True)
    read = [(s, it["label"]) for s, it in zip(supports, items, strict=True) if s is not None]
    labels = [y for _, y in read]
    scores = [calibration(s.signals()) for s, _ in read]
    unweighted = set(calibration.weights) - set(CONTEXT_SUPPORT_SIGNALS)
    correct = sum(
        (p >= calibration.threshold) == bool(y) for p, y in zip(scores, labels, strict=True)
    )
    lines = [
        f"# Groundedness from the context-support reads: {model_uri}, {split} split",
        "",
        f"{len(items)} responses, {len(read)} read (2 reads each), {seconds / len(items):.1f} s "
        f"per item on this run (reads already in the call cache take none). Calibration: {calibration.fitted_on}, threshold {calibration.threshold}.",
        "",
        "| score | AUROC [95 % CI] |",
        "|---|---|",
        f"| calibrated score | {fmt_auroc(scores, labels)} |",
    ]
    for name in CONTEXT_SUPPORT_SIGNALS:
        lines.append(
            f"| {name} alone | {fmt_auroc([s.signals()[name] for s, _ in read], labels)} |"
        )
    lines.append(  # HaluEval's hallucinated responses are longer: the row a signal must beat
        f"| *baseline: shorter response (fewer tokens)* | "
        f"{fmt_auroc([-len(s.pmi) for s, _ in read], labels)} |"
    )
    lines += ["", f"Accuracy at the threshold: {correct / len(read):.3f} ({correct}/{len(read)})."]
    if unweighted:
        lines.append(
            f"The calibration also weighs {sorted(unweighted)}, which this script does not "
            "compute: the score above is then not the judge's; use judge_quality.py."
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--split", default="dev", choices=["dev", "dialogue", "summarization"])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-db", default="benchmarks/results/.bench-cache.db")
    args = parser.parse_args()
    set_tracking_uri(f"sqlite:///{args.cache_db}")
    model = get_model(args.model)
    if not model.supports_reading:
        print(f"{args.model} cannot read a reply's log-probabilities", file=sys.stderr)
        return 2
    safe = args.model.replace(":", "_").replace("/", "_")
    out = RESULTS / f"context_support_{args.split}_{safe}.jsonl"
    items = items_for(args.split, args.n, args.seed)
    started = time.perf_counter()
    supports = asyncio.run(read_items(model, items, out))
    lines = report(args.model, args.split, items, supports, time.perf_counter() - started)
    print("\n".join(lines))
    path = write_result(f"context_support_{args.split}_{safe}.md", lines)
    print(f"wrote {out} and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
