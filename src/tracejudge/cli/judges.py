"""``tracejudge judges agreement``: how often a judge agrees with people, from the shell."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from tracejudge.cli.traces import experiment_ids_or_all, experiments_option
from tracejudge.judges.agreement import agreement
from tracejudge.tracing.client import Client


@click.group()
def judges() -> None:
    """Check the judges against people's verdicts."""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@judges.command("agreement")
@click.argument("name")
@experiments_option
@click.option("--filter", "filter_string", default=None, help="Filter language, as in search.")
@click.option(
    "--expectation", default=None, help="Also take an expectation of this name as the label."
)
@click.option("--max-traces", type=int, default=None, help="Look at no more than this many.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def agreement_command(
    name: str,
    experiments: tuple[str, ...],
    filter_string: str | None,
    expectation: str | None,
    max_traces: int | None,
    fmt: str,
) -> None:
    """Compare the verdicts called NAME with human feedback of the same name on the same traces."""
    client = Client()
    traces = client.search_all(
        experiment_ids_or_all(client, experiments),
        filter_string=filter_string,
        max_results=max_traces,
        include_spans=False,
    )
    report = agreement(name, traces, expectation=expectation)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    console = Console()
    if report.compared == 0:
        console.print(
            f"No trace has both a judge's and a person's verdict named {name!r} "
            f"({report.skipped} had only one of them)."
        )
        return
    summary = Table("compared", "accuracy", "Cohen's kappa", "AUROC of the score", "skipped")
    summary.add_row(
        str(report.compared),
        _fmt(report.accuracy),
        _fmt(report.kappa),
        _fmt(report.auroc),
        str(report.skipped),
    )
    console.print(summary)
    c = report.confusion
    matrix = Table("", "person: yes", "person: no", title="confusion")
    matrix.add_row("judge: yes", str(c["judge_yes_human_yes"]), str(c["judge_yes_human_no"]))
    matrix.add_row("judge: no", str(c["judge_no_human_yes"]), str(c["judge_no_human_no"]))
    console.print(matrix)
    if report.disagreements:
        console.print("\n[bold]Disagreements, most confident judge first[/bold]")
        for d in report.disagreements:
            score = "" if d.score is None else f" (score {d.score:.2f})"
            console.print(
                f"{d.trace_id}: judge {d.judge_value}{score}, person {d.human_value}"
                f"\n   judge: {(d.rationale or '')[:200]}"
                + (f"\n   person: {d.human_rationale[:200]}" if d.human_rationale else "")
            )
