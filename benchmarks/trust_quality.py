"""How well does the trust score tell right answers from wrong ones? AUROC on labelled data.

    python benchmarks/trust_quality.py [--model local:/default] [--n 12] [--split test|dev]
        [--presets base,low,medium,high] [--parts given,generated] [--closed-book]
        [--generated-data trivia|halueval]
    python benchmarks/fit_trust_weights.py results/trust_parts_dev_local__default.jsonl

``--split test`` (the default) samples its items with seed 11; ``--split dev`` samples other
items (seed 101, the test items left out), on which the per-model weights of the parts are
chosen (``fit_trust_weights.py`` reads the parts each item got, saved as
``results/trust_parts_<split>_<model>.jsonl``).

1. Score-given-response: for n seeded HaluEval-QA questions, the right and the hallucinated
   answer are scored as responses to the question with its knowledge passage (2n items).
2. Generate-then-score: the model answers n trivia questions (``red-trivia``; or HaluEval's
   with ``--generated-data halueval``) itself, closed book (``TrustScorer.prompt``); an answer
   is labelled correct when a normalised accepted answer appears in it as whole words (or it in
   the accepted answer). The labels go to ``results/trust_labels_*.md`` for spot checks by hand.

For each part: AUROC with a bootstrap 95 % interval for the full score at each preset, for
``medium`` with early stopping off (the calls it saves and the AUROC it costs), and for single
signals read from the same runs (self-reflection only, consistency only, one verbalised
confidence prompt, P(True) alone, token probability only), with model calls and seconds per
item. Presets share calls through the call cache, so a preset's calls are counted as it would
make them on its own, and its seconds estimated from the measured mean seconds per call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from common import auroc, fmt_auroc, load_halueval_qa, load_trivia, sample, slug, write_result
from tracejudge.models import get_model, track_usage
from tracejudge.store import set_tracking_uri
from tracejudge.trust import PRESETS, TrustScorer
from tracejudge.trust.similarity import normalize_answer

PROMPT = "Answer the question using the information given. Be brief.\n\nInformation: {knowledge}\n\nQuestion: {question}"
CLOSED_PROMPT = "Answer the question. Be brief.\n\nQuestion: {question}"


def make_prompt(row: dict[str, str], closed_book: bool) -> str:
    return (CLOSED_PROMPT if closed_book else PROMPT).format(**row)


def is_correct(response: str, golds: list[str]) -> int:
    """An accepted answer appears in the response as whole words (or the response in it)."""
    r = f" {normalize_answer(response)} "
    for gold in golds:
        g = f" {normalize_answer(gold)} "
        if g.strip() and (g in r or (len(r.strip()) >= 3 and r in g)):
            return 1
    return 0


class Run:
    """One scorer configuration over the items: scores, calls and time."""

    def __init__(
        self, label: str, results: list[dict[str, Any]], calls: int, seconds: float
    ) -> None:
        self.label = label
        self.results = results
        self.calls = calls
        self.seconds = seconds

    def component(self, name: str) -> list[float | None]:
        return [
            None if r["trustworthiness_score"] is None else r["log"]["per_component"].get(name)
            for r in self.results
        ]

    def reflection(self, name: str) -> list[float | None]:
        out = []
        for r in self.results:
            found = [x["score"] for x in r["log"].get("reflections", []) if x["name"] == name]
            out.append(found[0] if found else None)
        return out

    def scores(self) -> list[float | None]:
        return [r["trustworthiness_score"] for r in self.results]


def run_preset(
    model, preset: str, options: dict[str, Any], prompts, responses, generate: bool
) -> Run:
    scorer = TrustScorer(model, preset, {"log": ["explanation"], **options})
    start = time.perf_counter()
    with track_usage() as meter:
        results = (
            scorer.prompt(prompts)
            if generate
            else scorer.get_trustworthiness_score(prompts, responses)
        )
    wall = time.perf_counter() - start
    label = preset + (" (early stop off)" if options.get("early_stop") is False else "")
    run = Run(label, list(results), meter.calls + meter.cached_calls, wall)
    run.real_calls, run.real_seconds = meter.calls, meter.seconds  # type: ignore[attr-defined]
    return run


def row(
    label: str,
    scores: list[float | None],
    labels: list[int],
    calls: float | str,
    seconds: float | str,
) -> str:
    pairs = [(s, y) for s, y in zip(scores, labels, strict=True) if s is not None]
    value = fmt_auroc([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else "n/a"
    calls_text = f"{calls:.1f}" if isinstance(calls, float) else calls
    seconds_text = f"{seconds:.0f}" if isinstance(seconds, float) else seconds
    return f"| {label} | {value} | {len(pairs)} | {calls_text} | {seconds_text} |"


def best_auroc(scores: list[float | None], labels: list[int]) -> float:
    pairs = [(s, y) for s, y in zip(scores, labels, strict=True) if s is not None]
    value = auroc([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    return -1.0 if value is None else value


def part(title, model, presets, prompts, responses, labels, generate, seconds_per_call):
    items = len(prompts)
    # The richest preset runs first; the others reuse its calls from the cache (their calls are
    # still counted as they would make them alone).
    by_cost = sorted(presets, key=lambda p: PRESETS[p].calls_per_item(), reverse=True)
    done = {p: run_preset(model, p, {}, prompts, responses, generate) for p in by_cost}
    runs = [done[p] for p in presets]
    if "medium" in presets:
        runs.append(
            run_preset(model, "medium", {"early_stop": False}, prompts, responses, generate)
        )
    if generate:  # the labels come from the responses the scorer generated
        responses = [r.get("response") or "" for r in runs[0].results]
        labels = [is_correct(r, g) for r, g in zip(responses, labels, strict=True)]
    part_rows = [  # every part and check of each item, to fit the weights on (dev split)
        {
            "part": "generated" if generate else "given",
            "label": y,
            **(r["log"].get("per_component") or {}),
            "reflections": {x["name"]: x["score"] for x in r["log"].get("reflections", [])},
            "samples": [
                {"similarity": x["similarity"], "exact_match": x["exact_match"]}
                for x in r["log"].get("samples", [])
            ],
        }
        for r, y in zip(runs[-1].results, labels, strict=True)
        if r["trustworthiness_score"] is not None
    ]
    real_calls = sum(r.real_calls for r in runs)  # type: ignore[attr-defined]
    real_seconds = sum(r.real_seconds for r in runs)  # type: ignore[attr-defined]
    per_call = real_seconds / real_calls if real_calls else seconds_per_call
    lines = [
        f"## {title}",
        "",
        f"{items} items, {sum(labels)} labelled correct. Seconds per item are estimated from the measured "
        f"{per_call:.1f} s per model call.",
        "",
        "| score | AUROC [95 % CI] | items scored | model calls / item | seconds / item |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        calls = r.calls / items
        lines.append(row(f"**{r.label}**", r.scores(), labels, calls, calls * per_call))
    # single signals come from the run that asked every check (an early stop skips some)
    richest = runs[-1] if "medium" in presets else runs[len(presets) - 1]
    n_reflections = (
        len([x for x in richest.results[0]["log"].get("reflections", [])]) if richest.results else 0
    )
    n_samples = len(richest.results[0]["log"].get("samples", [])) if richest.results else 0
    baselines = [
        (
            f"self-reflection only ({n_reflections} prompts, from {richest.label})",
            richest.component("self_reflection"),
            float(n_reflections),
        ),
        (
            f"consistency only ({n_samples} samples, from {richest.label})",
            richest.component("consistency"),
            None,
        ),
        (
            "one verbalised confidence (0-100 certainty prompt)",
            richest.reflection("certainty"),
            1.0,
        ),
        ("P(True) alone (True/False prompt)", richest.reflection("true_false"), 1.0),
    ]
    if generate:
        baselines.append(("token probability only", richest.component("token_probability"), 0.0))
    lines.append("| *single signals, same model and items:* | | | | |")
    for label, scores, calls in baselines:
        lines.append(
            row(
                label,
                scores,
                labels,
                calls if calls is not None else "-",
                calls * per_call if calls is not None else "-",
            )
        )
    full = max((r for r in runs[: len(presets)]), key=lambda r: best_auroc(r.scores(), labels))
    single = max(baselines, key=lambda b: best_auroc(b[1], labels))
    margin = best_auroc(full.scores(), labels) - best_auroc(single[1], labels)
    minority = min(sum(labels), items - sum(labels))
    if minority < 5:
        lines += [
            "",
            f"**Only {minority} item(s) in one class: these AUROCs and the margin below mean "
            "little; run a larger --n.**",
        ]
    lines += [
        "",
        f"Best full score: {full.label} ({best_auroc(full.scores(), labels):.3f}); best single signal: "
        f"{single[0]} ({best_auroc(single[1], labels):.3f}); margin **{margin:+.3f}** "
        f"(target: >= +0.05 -> {'met' if margin >= 0.05 else 'NOT met'}).",
        "",
    ]
    if "medium" in presets:
        on = next(r for r in runs if r.label == "medium")
        off = runs[-1]
        lines.append(
            f"Early stop (medium): {on.calls / items:.2f} vs {off.calls / items:.2f} calls per item "
            f"({1 - on.calls / off.calls:.0%} saved); AUROC {best_auroc(on.scores(), labels):.3f} with, "
            f"{best_auroc(off.scores(), labels):.3f} without."
        )
        lines.append("")
    return lines, responses, labels, part_rows


SEEDS = {"test": 11, "dev": 101}


def split_rows(rows: list[dict[str, Any]], n: int, split: str) -> list[dict[str, Any]]:
    """The split's n rows: the test sample, or a dev sample drawn from the rest."""
    test = sample(rows, n, SEEDS["test"])
    if split == "test":
        return test
    taken = {id(r) for r in test}
    return sample([r for r in rows if id(r) not in taken], n, SEEDS["dev"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--n", type=int, default=12, help="questions per part")
    parser.add_argument("--split", choices=sorted(SEEDS), default="test")
    parser.add_argument("--presets", default="base,low,medium,high")
    parser.add_argument("--parts", default="given,generated")
    parser.add_argument(
        "--closed-book",
        action="store_true",
        help="score the given answers without the knowledge passage (generated ones always are)",
    )
    parser.add_argument(
        "--generated-data",
        choices=("trivia", "halueval"),
        default="trivia",
        help="questions the model answers itself (trivia: red-trivia's lists, which a small model "
        "gets right about half the time; HaluEval's multi-hop ones it almost never does)",
    )
    parser.add_argument(
        "--cache-db",
        default="benchmarks/results/.bench-cache.db",
        help="call cache (delete it for fresh timings)",
    )
    args = parser.parse_args()
    set_tracking_uri(f"sqlite:///{os.path.abspath(args.cache_db)}")
    model = get_model(args.model)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    rows = split_rows(load_halueval_qa(), 2 * args.n, args.split)
    given_rows = rows[: args.n]
    generated_rows = (
        split_rows(load_trivia(), args.n, args.split)
        if args.generated_data == "trivia"
        else [{"question": r["question"], "golds": [r["right_answer"]]} for r in rows[args.n :]]
    )
    lines = [
        f"# Trust score on HaluEval-QA: {args.model} (given answers "
        f"{'closed book' if args.closed_book else 'with the knowledge passage'}; generated "
        f"answers closed book, {args.generated_data} questions); {args.split} split",
        "",
    ]
    all_parts: list[dict[str, Any]] = []
    started = time.perf_counter()
    if "given" in args.parts:
        prompts, responses, labels = [], [], []
        for r in given_rows:
            for answer, label in ((r["right_answer"], 1), (r["hallucinated_answer"], 0)):
                prompts.append(make_prompt(r, args.closed_book))
                responses.append(answer)
                labels.append(label)
        section, _, _, part_rows = part(
            "1. Score-given-response", model, presets, prompts, responses, labels, False, 10.0
        )
        lines += section
        all_parts += part_rows
    if "generated" in args.parts:
        # Always closed book: given the passage, the model copies the answer and every label is
        # "correct" (8 of 8 when measured), which leaves nothing to rank.
        prompts = [CLOSED_PROMPT.format(question=r["question"]) for r in generated_rows]
        golds = [r["golds"] for r in generated_rows]
        section, responses, labels, part_rows = part(
            "2. Generate-then-score", model, presets, prompts, None, golds, True, 10.0
        )
        lines += section
        all_parts += part_rows
        label_lines = [
            f"# Labels of the generated answers ({args.model}, {args.split} split)",
            "",
            "| # | question | gold | response | label |",
            "|---|---|---|---|---|",
        ]
        for i, (r, resp, y) in enumerate(zip(generated_rows, responses, labels, strict=True), 1):
            clean = resp.replace("\n", " ").replace("|", "/")[:200]
            label_lines.append(
                f"| {i} | {r['question']} | {' / '.join(r['golds'])} | {clean} | "
                f"{'correct' if y else 'wrong'} |"
            )
        suffix = "" if args.split == "test" else f"_{args.split}"
        write_result(f"trust_labels_{slug(args.model)}{suffix}.md", label_lines)
    lines.append(f"Total wall time: {(time.perf_counter() - started) / 60:.1f} min.")
    print("\n".join(lines))
    parts = "" if {"given", "generated"} <= set(args.parts.split(",")) else f"_{args.parts}"
    split = "" if args.split == "test" else f"_{args.split}"
    path = write_result(f"trust_quality_{slug(args.model)}{parts}{split}.md", lines)
    parts_path = path.with_name(f"trust_parts_{args.split}{parts}_{slug(args.model)}.jsonl")
    parts_path.write_text("".join(json.dumps(r) + "\n" for r in all_parts), encoding="utf-8")
    print(f"\n(written to {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
