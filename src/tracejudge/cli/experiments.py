"""``tracejudge experiments …``"""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.table import Table

from tracejudge.store import get_store


@click.group()
def experiments() -> None:
    """Experiments: the folders traces are grouped in."""


@experiments.command("list")
def list_experiments() -> None:
    """List every experiment with its id and creation time."""
    table = Table("id", "name", "created")
    for exp in get_store().list_experiments():
        created = dt.datetime.fromtimestamp(exp.creation_time / 1000).isoformat(timespec="seconds")
        table.add_row(exp.experiment_id, exp.name, created)
    Console().print(table)
