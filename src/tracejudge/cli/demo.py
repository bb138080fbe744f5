"""``tracejudge demo``"""

from __future__ import annotations

import click
from rich.console import Console

from tracejudge.demo.app import QUESTIONS


@click.command()
@click.option(
    "--model", default=None, help="Model URI for the app and the judges (default: the local model)."
)
@click.option("--preset", default="low", show_default=True, help="Trust score quality preset.")
@click.option(
    "--questions", default=len(QUESTIONS), show_default=True, type=click.IntRange(1, len(QUESTIONS))
)
def demo(model: str | None, preset: str, questions: int) -> None:
    """Run a small traced café assistant on the local model, evaluate its traces with the trust
    score and a groundedness judge, and print the least trustworthy answers first."""
    from tracejudge.demo.run import run_demo

    run_demo(Console(), model, preset, questions)
