"""The demo's steps: run the app over the questions, evaluate its traces, show the worst."""

from __future__ import annotations

import time

from rich.console import Console

import tracejudge
from tracejudge.demo.app import QUESTIONS, make_app
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
    chosen = QUESTIONS[:questions]
    trace_ids: list[str] = []
    with RunProgress() as progress:
        progress.phase("app", "the café assistant answers", len(chosen))
        for question in chosen:
            answer(question)
            trace_ids.append(tracejudge.get_last_active_trace_id() or "")
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

    from tracejudge.cli.report import print_run_summary, print_worst

    print_run_summary(console, result.run)
    print_worst(console, result, "trustworthiness", limit=len(chosen))
    console.print(
        f"\nDone in {time.perf_counter() - started:.0f} s. Explore: tracejudge traces search --experiment "
        f"{EXPERIMENT} --order-by 'feedback.trustworthiness ASC'"
    )
