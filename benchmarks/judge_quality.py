"""How good is ``is_grounded``? Accuracy and AUROC on HaluEval-QA, parse failures, cost, injections.

    python benchmarks/judge_quality.py [--model local:/default] [--n 100] [--seed 7] [--no-injection]

For a seeded sample of HaluEval-QA questions, judges the right answer and the hallucinated
answer against the question's knowledge passage (2n labelled answers). Prints accuracy of the
verdict, AUROC of the verdict confidence P(yes) (the hard verdict where the model gives no
log-probabilities) with a bootstrap 95 % interval, parse-failure and repair rates, model calls
and seconds per item, then the flip rate of the prompt-injection set. The dataset is a
measurement, not something the prompts were tuned on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from common import fmt_auroc, load_halueval_qa, sample, slug, write_result
from tracejudge.judges import ais_grounded
from tracejudge.judges.injection import measure_injection_resistance
from tracejudge.models import get_model, track_usage
from tracejudge.store import set_tracking_uri


async def judge_all(model, rows):
    jobs, labels = [], []
    for row in rows:
        for answer, label in ((row["right_answer"], 1), (row["hallucinated_answer"], 0)):
            jobs.append(ais_grounded(row["question"], answer, row["knowledge"], model=model))
            labels.append(label)
    return await asyncio.gather(*jobs), labels


def cost_text(meter) -> str:
    if meter.calls_without_price:
        return f"unknown for {meter.calls_without_price} call(s) (no price for this model)"
    return f"${meter.cost_usd:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="local:/default")
    parser.add_argument(
        "--n", type=int, default=100, help="questions (each gives 2 labelled answers)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-injection", action="store_true")
    parser.add_argument(
        "--cache", action="store_true", help="allow cached judgements (default: fresh calls)"
    )
    args = parser.parse_args()
    if not args.cache:
        import os

        os.environ["TRACEJUDGE_CALL_CACHE"] = "0"
    set_tracking_uri("sqlite:///benchmarks/results/.bench-cache.db")
    model = get_model(args.model)
    rows = sample(load_halueval_qa(), args.n, args.seed)

    start = time.perf_counter()
    with track_usage() as meter:
        feedbacks, labels = asyncio.run(judge_all(model, rows))
    seconds = time.perf_counter() - start
    items = len(feedbacks)
    ok = [(f, y) for f, y in zip(feedbacks, labels, strict=True) if f.error is None]
    parse_failures = sum(
        1 for f in feedbacks if f.error and f.error.error_code == "JUDGE_PARSE_ERROR"
    )
    other_errors = sum(
        1 for f in feedbacks if f.error and f.error.error_code != "JUDGE_PARSE_ERROR"
    )
    repaired = sum(1 for f, _ in ok if f.metadata.get("repaired"))
    accuracy = sum((f.value == "yes") == (y == 1) for f, y in ok) / len(ok) if ok else float("nan")
    confidence = [f.metadata.get("p_yes", 1.0 if f.value == "yes" else 0.0) for f, _ in ok]
    hard = [1.0 if f.value == "yes" else 0.0 for f, _ in ok]
    ok_labels = [y for _, y in ok]
    has_logprobs = any("p_yes" in f.metadata for f, _ in ok)

    lines = [
        f"# is_grounded on HaluEval-QA: {args.model}",
        "",
        f"{len(rows)} questions (seed {args.seed}) -> {items} answers, half right, half hallucinated.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy of the yes/no verdict | {accuracy:.3f} ({sum((f.value == 'yes') == (y == 1) for f, y in ok)}/{len(ok)}) |",
        f"| AUROC of P(yes) {'(log-probabilities)' if has_logprobs else '(none: hard verdicts)'}, 95 % CI | {fmt_auroc(confidence, ok_labels)} |",
        f"| AUROC of the hard verdict | {fmt_auroc(hard, ok_labels)} |",
        f"| says yes to right answers / to hallucinated answers | {sum(f.value == 'yes' for f, y in ok if y == 1)}/{ok_labels.count(1)} / {sum(f.value == 'yes' for f, y in ok if y == 0)}/{ok_labels.count(0)} |",
        f"| parse failures (after one repair) | {parse_failures}/{items} ({parse_failures / items:.1%}) |",
        f"| replies needing the repair prompt | {repaired}/{items} |",
        f"| other errors | {other_errors} |",
        f"| model calls per item | {meter.calls / items:.2f} (cached: {meter.cached_calls}) |",
        f"| seconds per item (wall, concurrency = model limit) | {seconds / items:.2f} |",
        f"| tokens per item in / out | {meter.input_tokens / items:.0f} / {meter.output_tokens / items:.0f} |",
        f"| cost | {cost_text(meter)} |",
    ]
    if not args.no_injection:
        start = time.perf_counter()
        report = asyncio.run(measure_injection_resistance(model))
        flip = report.flip_rate
        lines += [
            "",
            "## Prompt-injection set",
            "",
            f"Clean ungrounded responses the judge rejected: {report.clean_rejected}/{report.clean_total}. "
            f"Injected variants of those that flipped the verdict to yes: **{report.flips}/{report.trials}"
            f"{f' = {flip:.1%}' if flip is not None else ''}** (errors: {report.errors}; "
            f"{time.perf_counter() - start:.0f} s).",
            "",
            "| injection | flips / trials |",
            "|---|---|",
            *[f"| {name} | {v[0]}/{v[1]} |" for name, v in report.by_injection.items()],
        ]
    print("\n".join(lines))
    path = write_result(f"judge_quality_{slug(args.model)}.md", lines)
    print(f"\n(written to {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
