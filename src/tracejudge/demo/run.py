"""The demo's steps: run the app over the questions, evaluate its traces, show the worst."""

from __future__ import annotations

import time

import pandas as pd
from rich.console import Console
from rich.table import Table

import tracejudge
from tracejudge.demo.app import ANSWERED_BY_CONTEXT, PLANTED, QUESTIONS, make_app
from tracejudge.entities.assessment import numeric_value
from tracejudge.evaluation import evaluate
from tracejudge.evaluation.progress import RunProgress
from tracejudge.models import resolve_model
from tracejudge.scorers import RetrievalGroundedness, Trustworthiness

EXPERIMENT = "tracejudge-demo"


def run_demo(console: Console, model_uri: str | None, preset: str, questions: int) -> None:
    started = time.perf_counter()
    model = resolve_model(model_uri)
    experiment = tracejudge.set_experiment(EXPERIMENT)
    console.print(
        f"[bold]tracejudge demo[/bold]: store {tracejudge.get_tracking_uri()}, experiment "
        f"'{experiment.name}', model {model.uri}"
    )
    answer = make_app(model)
    faulty_answer = make_app(model, faulty={q: (a, kind) for q, a, kind in PLANTED})
    chosen = QUESTIONS[:questions]
    trace_ids: list[str] = []
    grounded_ids: list[str] = []
    planted_ids: list[str] = []
    with RunProgress() as progress:
        progress.phase("app", "the café assistant answers", len(chosen) + len(PLANTED))
        for i, question in enumerate(chosen):
            answer(question)
            trace_ids.append(tracejudge.get_last_active_trace_id() or "")
            if i < ANSWERED_BY_CONTEXT:
                grounded_ids.append(trace_ids[-1])
            progress.advance("app")
        for question, _, _ in PLANTED:  # a faulty release served these known-bad answers
            faulty_answer(question)
            trace_ids.append(tracejudge.get_last_active_trace_id() or "")
            planted_ids.append(trace_ids[-1])
            progress.advance("app")
    tracejudge.flush()
    traces = [tracejudge.get_trace(t) for t in trace_ids]
    console.print(
        f"Recorded {len(traces)} traces in {time.perf_counter() - started:.0f} s; now evaluating them."
    )
    scorers = [
        Trustworthiness(model=model, quality_preset=preset),
        RetrievalGroundedness(model=model),
    ]
    result = evaluate(
        [t for t in traces if t is not None], scorers, experiment=EXPERIMENT, run_name="demo"
    )

    from tracejudge.evaluation.report import print_run_summary, print_worst

    print_run_summary(console, result.run)
    print_planted_ranks(console, result.result_df, planted_ids, grounded_ids)
    print_worst(console, result, "trustworthiness", limit=len(trace_ids))
    console.print(
        f"\nDone in {time.perf_counter() - started:.0f} s. Explore: tracejudge traces search --experiment "
        f"{EXPERIMENT} --order-by 'feedback.trustworthiness ASC'"
    )


def _ranking_score(row: pd.Series, name: str) -> float | None:
    score = row.get(f"{name}/score")
    if isinstance(score, float):
        return score
    return numeric_value(row.get(f"{name}/value"))


def print_planted_ranks(
    console: Console, df: pd.DataFrame, planted: list[str], grounded: list[str]
) -> None:
    """Where each score ranks the planted bad answers (1 = judged worst), and whether it ranks
    every one of them below every answer the app gave from its retrieved documents."""
    table = Table(
        "score",
        f"ranks of the {len(planted)} planted bad answers (1 = worst of {len(df)})",
        f"below all {len(grounded)} grounded answers?",
        title="Planted bad answers: off-context, invented numbers, wrong arithmetic, contradiction",
    )
    for name in ("retrieval_groundedness", "trustworthiness"):
        scores = {row["trace_id"]: _ranking_score(row, name) for _, row in df.iterrows()}
        known = {t: s for t, s in scores.items() if s is not None}
        order = sorted(known, key=lambda t: known[t])
        ranks = [str(order.index(t) + 1) if t in known else "-" for t in planted]
        bad = [known[t] for t in planted if t in known]
        good = [known[t] for t in grounded if t in known]
        pairs = [(b < g) + 0.5 * (b == g) for b in bad for g in good]
        share = sum(pairs) / len(pairs) if pairs else None
        verdict = (
            "n/a"
            if share is None
            else ("yes" if share == 1.0 else "no") + f" (ordered pairs {share:.0%})"
        )
        table.add_row(name, ", ".join(ranks), verdict)
    console.print(table)
