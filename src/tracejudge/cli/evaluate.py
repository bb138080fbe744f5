"""``tracejudge evaluate``: score an experiment's traces and show the worst ones."""

from __future__ import annotations

import click
from rich.console import Console

from tracejudge.cli.traces import experiment_ids_for
from tracejudge.entities import EvaluationRun, Trace
from tracejudge.errors import InvalidArgumentError
from tracejudge.evaluation import EvaluationResult, RayExecutor, TraceQuery, evaluate
from tracejudge.evaluation.batched import DEFAULT_BATCH_SIZE
from tracejudge.evaluation.report import print_run_summary, print_worst
from tracejudge.scorers import Guidelines, Scorer
from tracejudge.scorers.registry import BUILTIN_SCORERS, builtin_scorer
from tracejudge.store import get_store
from tracejudge.tracing.client import Client

WORST_FROM_STORE_LIMIT = 5000
"""A run in batches never held its rows: the worst are read back from the store up to this size."""


def build_scorers(
    names: str | None, guidelines: tuple[str, ...], model: str | None, preset: str
) -> list[Scorer]:
    """The scorers asked for; with neither ``--scorers`` nor ``--guideline``, the trust score
    (a guideline alone is not charged for a trust score nobody asked for)."""
    if names is None:
        names = "" if guidelines else "trustworthiness"
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
    help="Experiment name (repeatable; required unless --resume).",
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
    default=None,
    help=f"Comma-separated: {', '.join(sorted(BUILTIN_SCORERS))} "
    "(default: trustworthiness, unless --guideline is given).",
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
    "--concurrency",
    default=None,
    type=click.IntRange(min=1),
    help="Row x scorer tasks at once (per worker on Ray).",
)
@click.option(
    "--show",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the worst traces to print.",
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
@click.option(
    "--ray-address",
    default=None,
    help='Score on a Ray cluster ("auto", "ray://head:10001"; "local" starts one here). The '
    "store must be one every node reaches: PostgreSQL or a tracking server.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="With --ray-address: Ray actors (default: the cluster's CPUs / --cpus-per-worker).",
)
@click.option(
    "--cpus-per-worker",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="With --ray-address: CPUs reserved per actor (below 1 for hosted judges).",
)
@click.option(
    "--batch-size",
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    help="Traces per batch sent to a worker (runs in batches: --ray-address, --resume).",
)
@click.option(
    "--resume",
    "resume_run",
    default=None,
    metavar="RUN_ID",
    help="Resume an interrupted run: score only what it has no verdict for yet (its traces and "
    "scorers are read from the run; --experiment/--filter/--scorers not needed).",
)
def evaluate_command(
    experiments: tuple[str, ...],
    filter_string: str | None,
    max_results: int | None,
    scorer_names: str | None,
    guidelines: tuple[str, ...],
    model: str | None,
    preset: str,
    run_name: str | None,
    concurrency: int | None,
    show: int,
    from_mlflow: str | None,
    no_write_back: bool,
    ray_address: str | None,
    workers: int | None,
    cpus_per_worker: float,
    batch_size: int,
    resume_run: str | None,
) -> None:
    """Score an experiment's traces; print run metrics and the worst traces with their reasons."""
    console = Console()
    if ray_address is not None or resume_run is not None:  # in batches: nothing loaded whole
        if from_mlflow:
            raise click.UsageError(
                "--from-mlflow scores in one process: drop --ray-address/--resume."
            )
        ray = None
        if ray_address is not None:
            address = None if ray_address == "local" else ray_address
            ray = RayExecutor(address=address, workers=workers, cpus_per_worker=cpus_per_worker)
        data: TraceQuery | None = None
        chosen: list[Scorer] | None = None
        if resume_run is not None:
            console.print(f"Resuming run {resume_run}")
        elif not experiments:
            raise click.UsageError("Give --experiment (or --resume RUN_ID).")
        else:
            data = TraceQuery(experiments, filter_string, max_results)
            chosen = build_scorers(scorer_names, guidelines, model, preset)
        batched = evaluate(
            data,
            chosen,
            experiment=experiments[0] if len(experiments) == 1 else None,
            run_name=run_name,
            max_concurrency=concurrency,
            executor=ray or "local",
            run_id=resume_run,
            batch_size=batch_size,
        )
        _report_batched(console, batched, ray, show)
        return
    if not experiments:
        raise click.UsageError("Give --experiment (or --resume RUN_ID).")
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
    print_worst(console, result, _order([s.name for s in scorers]), show)
    _fail_if_nothing_scored(result.run)


def _fail_if_nothing_scored(run: EvaluationRun) -> None:
    """Exit 1 when every verdict of the run is an error (a judge down for the whole run): a
    script that checks the exit code must not take that run for a result."""
    counts = [v for k, v in run.metrics.items() if k.endswith("/count")]
    errors = sum(v for k, v in run.metrics.items() if k.endswith("/error_count"))
    if errors and not any(counts):
        raise click.ClickException(
            f"No verdict was scored: all {errors:.0f} failed (each error is recorded on its "
            "trace, with the run)."
        )


def _order(names: list[str]) -> str:
    """The verdict the worst are ranked by: the trust score when the run has it."""
    return "trustworthiness" if "trustworthiness" in names else names[0]


def _report_batched(
    console: Console, result: EvaluationResult, ray: RayExecutor | None, show: int
) -> None:
    """A run scored in batches: its summary, what was scored now and before, then the worst
    (read back from the store while the run is small enough, else the search that lists them)."""
    print_run_summary(console, result.run)
    usage = result.run.usage
    console.print(
        f"traces: {usage.get('traces', 0)}, scored now: {usage.get('scored', 0)}, "
        f"already scored by the run: {usage.get('already_scored', 0)}"
        + (f", workers replaced: {ray.replaced}" if ray is not None and ray.replaced else "")
    )
    order = _order([s.get("name", "") for s in result.run.scorers])
    if result.run.row_count > WORST_FROM_STORE_LIMIT:
        experiment = get_store().get_experiment(result.run.experiment_id).name
        console.print(
            f"The worst first: tracejudge traces search --experiment "
            f"'{experiment}' --order-by 'feedback.{order} ASC' --format table"
        )
    else:
        print_worst(console, result, order, show)
    _fail_if_nothing_scored(result.run)
