"""``tracejudge gc``: delete traces older than an age, in batches, while writers go on."""

from __future__ import annotations

import click

from tracejudge import settings
from tracejudge.cli.traces import experiment_ids_for, experiments_option
from tracejudge.errors import InvalidArgumentError
from tracejudge.store import get_store
from tracejudge.store.retention import enforce_retention


@click.command("gc")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Delete traces that started longer ago than this: 30d, 12h, 90m, 2w…",
)
@experiments_option
@click.option(
    "--vacuum",
    is_flag=True,
    help="SQLite: also rewrite the file to return the space to the disk (blocks writers meanwhile).",
)
def gc_command(older_than: str, experiments: tuple[str, ...], vacuum: bool) -> None:
    """Delete old traces with their spans and assessments (retention)."""
    try:
        max_age_s = settings.parse_duration(older_than)
    except ValueError as exc:
        raise InvalidArgumentError(f"--older-than {older_than!r}: {exc}.") from None
    ids = experiment_ids_for(experiments)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        click.echo(f"  {done:,} deleted", err=True)

    deleted = enforce_retention(get_store(), max_age_s, ids, on_batch=progress, full_vacuum=vacuum)
    click.echo(f"deleted {deleted:,} traces older than {older_than}")
