"""``tracejudge evaluate``: score an experiment's traces and show the worst ones."""

from __future__ import annotations

import click
from rich.console import Console

from tracejudge.cli.traces import experiment_ids_for
from tracejudge.entities import Trace
from tracejudge.errors import InvalidArgumentError
from tracejudge.evaluation import evaluate
from tracejudge.evaluation.report import print_run_summary, print_worst
from tracejudge.scorers import Guidelines, Scorer
from tracejudge.scorers.registry import BUILTIN_SCORERS, builtin_scorer
from tracejudge.tracing.client import Client


def build_scorers(
    names: str, guidelines: tuple[str, ...], model: str | None, preset: str
) -> list[Scorer]:
    scorers: list[Scorer] = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        scorers.append(builtin_scorer(name, model, preset))
    for item in guidelines:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise InvalidArgumentError(f'--guideline takes NAME="text", not {item!r}.')
        scorers.append(
            Guidelines(name=name.strip(), guidelines=text.strip().strip('"'), model=model)
        )
    if not scorers:
        raise InvalidArgumentError("Give --scorers and/or --guideline.")
    return scorers


@click.command("evaluate")
@click.option(
    "--experiment",
    "experiments",
    multiple=True,
    required=True,
    help="Experiment name (repeatable).",
)
@click.option(
    "--filter", "filter_string", default=None, help="Which traces, e.g. \"tag.env = 'prod'\"."
)
@click.option(
    "--max-results",
    default=None,
    type=click.IntRange(min=1),
    help="At most this many traces (newest first).",
)
@click.option(
    "--scorers",
    "scorer_names",
    default="trustworthiness",
    show_default=True,
    help=f"Comma-separated: {', '.join(sorted(BUILTIN_SCORERS))}.",
)
@click.option(
    "--guideline", "guidelines", multiple=True, help='A guideline scorer: NAME="text" (repeatable).'
)
@click.option(
    "--model",
    default=None,
    help="Judge model URI (default: TRACEJUDGE_JUDGE_MODEL, OpenAI, or local).",
)
@click.option("--preset", default="medium", show_default=True, help="Trust score quality preset.")
@click.option("--run-name", default=None)
@click.option(
    "--concurrency", default=None, type=click.IntRange(min=1), help="Row x scorer tasks at once."
)
@click.option(
    "--show", default=10, show_default=True, help="How many of the worst traces to print."
)
@click.option(
    "--from-mlflow",
    "from_mlflow",
    default=None,
    metavar="TRACKING_URI",
    help="Score the traces of an MLflow tracking server or store (--experiment names the MLflow "
    "experiment, --filter is MLflow's syntax) and write the verdicts back onto them.",
)
@click.option(
    "--no-write-back",
    is_flag=True,
    help="With --from-mlflow: keep the verdicts here only.",
)
def evaluate_command(
    experiments: tuple[str, ...],
    filter_string: str | None,
    max_results: int | None,
    scorer_names: str,
    guidelines: tuple[str, ...],
    model: str | None,
    preset: str,
    run_name: str | None,
    concurrency: int | None,
    show: int,
    from_mlflow: str | None,
    no_write_back: bool,
) -> None:
    """Score an experiment's traces; print run metrics and the worst traces with their reasons."""
    console = Console()
    scorers = build_scorers(scorer_names, guidelines, model, preset)
    traces: list[Trace]
    if from_mlflow:
        if len(experiments) != 1:
            raise click.UsageError("--from-mlflow takes exactly one --experiment.")
        from tracejudge.integrations.mlflow import search_traces as search_mlflow

        traces = search_mlflow(
            from_mlflow,
            experiment=experiments[0],
            filter_string=filter_string,
            max_results=max_results,
            write_back=not no_write_back,
        )
    else:
        ids = experiment_ids_for(experiments)
        traces = Client().search_all(ids, filter_string=filter_string, max_results=max_results)
    if not traces:
        raise click.ClickException("No traces match.")
    console.print(f"Scoring {len(traces)} trace(s) with {', '.join(s.name for s in scorers)}")
    result = evaluate(
        traces,
        scorers,
        experiment=experiments[0] if len(experiments) == 1 else None,
        run_name=run_name,
        max_concurrency=concurrency,
    )
    print_run_summary(console, result.run)
    if result.delivered is not None:
        console.print(
            "Written back to MLflow: {written} new, {replaced} replaced, {failed} failed".format(
                **result.delivered
            )
        )
    order = (
        "trustworthiness" if any(s.name == "trustworthiness" for s in scorers) else scorers[0].name
    )
    print_worst(console, result, order, show)
