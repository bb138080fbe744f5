"""``tracejudge import-mlflow`` and ``tracejudge export --format mlflow``: an experiment's traces
with their assessments, copied between an MLflow tracking server (or store) and ours."""

from __future__ import annotations

import click

from tracejudge.integrations.mlflow import TransferCounts, export_experiment, import_experiment


def _progress(counts: TransferCounts) -> None:
    click.echo(f"  … {counts}", err=True)


@click.command("import-mlflow")
@click.option(
    "--from", "source", required=True, metavar="TRACKING_URI", help="MLflow server or store."
)
@click.option("--experiment", required=True, help="The MLflow experiment (name or id).")
@click.option("--filter", "filter_string", default=None, help="MLflow filter syntax.")
def import_mlflow_command(source: str, experiment: str, filter_string: str | None) -> None:
    """Copy an MLflow experiment's traces and assessments here (rerun to resume: nothing twice)."""
    counts = import_experiment(source, experiment, filter_string=filter_string, progress=_progress)
    click.echo(f"Imported {experiment!r}: {counts}")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["mlflow"]), required=True)
@click.option(
    "--to", "target", required=True, metavar="TRACKING_URI", help="MLflow server or store."
)
@click.option("--experiment", required=True, help="The tracejudge experiment (name or id).")
@click.option("--mlflow-experiment", default=None, help="Name in MLflow (default: the same).")
@click.option("--filter", "filter_string", default=None, help="tracejudge filter syntax.")
def export_command(
    fmt: str,
    target: str,
    experiment: str,
    mlflow_experiment: str | None,
    filter_string: str | None,
) -> None:
    """Copy an experiment's traces and assessments into MLflow (rerun-safe)."""
    counts = export_experiment(
        experiment,
        target,
        mlflow_experiment_name=mlflow_experiment,
        filter_string=filter_string,
        progress=_progress,
    )
    click.echo(f"Exported {experiment!r} to {target}: {counts}")
