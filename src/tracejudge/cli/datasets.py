"""``tracejudge datasets …``: list, show and export evaluation datasets, and add the traces a
filter finds to one (with the expectations logged on them)."""

from __future__ import annotations

import datetime as dt
import sys

import click
from rich.console import Console
from rich.table import Table

from tracejudge.cli.traces import experiment_ids_or_all, experiments_option
from tracejudge.entities._json import dumps
from tracejudge.errors import DatasetNotFoundError
from tracejudge.evaluation.datasets import (
    EvaluationDataset,
    create_dataset,
    get_dataset,
    search_datasets,
)
from tracejudge.tracing.client import Client


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds")


def _short(value: object, n: int = 70) -> str:
    text = dumps(value)
    return text if len(text) <= n else text[: n - 1] + "…"


@click.group()
def datasets() -> None:
    """Evaluation datasets: inputs with their expected outputs, to evaluate app versions on."""


@datasets.command("list")
def list_datasets() -> None:
    """Every dataset, newest first: records, experiments, tags, last change."""
    table = Table("name", "id", "records", "experiments", "tags", "updated")
    for d in search_datasets():
        table.add_row(
            d.name,
            d.dataset_id,
            str(len(d)),
            ", ".join(d.experiment_ids),
            ", ".join(f"{k}={v}" for k, v in d.tags.items()),
            _when(d.last_update_time),
        )
    Console().print(table)


@datasets.command("show")
@click.argument("name")
@click.option("--limit", type=int, default=20, show_default=True)
def show(name: str, limit: int) -> None:
    """A dataset's first records: inputs, expectations and where each came from."""
    found = get_dataset(name=name)
    table = Table("inputs", "expectations", "source", title=f"{found.name} ({len(found)} records)")
    for record in found.records[:limit]:
        source = record.source_type.value + (f" {record.source_id}" if record.source_id else "")
        table.add_row(_short(record.inputs), _short(record.expectations), source)
    Console().print(table)


@datasets.command("export")
@click.argument("name")
def export(name: str) -> None:
    """Every record as one JSON object per line (inputs, expectations, tags, source)."""
    for record in get_dataset(name=name).records:
        sys.stdout.write(dumps(record.to_dict()) + "\n")


@datasets.command("add-traces")
@click.argument("name")
@experiments_option
@click.option("--filter", "filter_string", default=None, help="Filter language, as in search.")
@click.option("--max-results", type=click.IntRange(min=1), default=1000, show_default=True)
def add_traces(
    name: str, experiments: tuple[str, ...], filter_string: str | None, max_results: int
) -> None:
    """Merge the traces the filter finds into the dataset (made if it does not exist): their
    inputs, and the expectations logged on them."""
    client = Client()
    ids = experiment_ids_or_all(client, experiments)
    found = client.search_all(
        ids, filter_string=filter_string, max_results=max_results, include_spans=False
    )
    if not found:  # nothing to add: no empty dataset made, and a script sees the miss
        raise click.ClickException("No traces match; the dataset is unchanged.")
    try:
        dataset: EvaluationDataset = get_dataset(name=name)
    except DatasetNotFoundError:
        dataset = create_dataset(name, experiment_id=ids)
    before = len(dataset)
    dataset.merge_records(found)
    click.echo(
        f"{len(found)} traces merged into {name!r}: {len(dataset) - before} new records, "
        f"{len(dataset)} in all."
    )
