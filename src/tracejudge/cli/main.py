"""The root command group: shared options and turning tracejudge errors into clean exits."""

from __future__ import annotations

import sys
from typing import Any

import click

from tracejudge.errors import InvalidArgumentError, TraceJudgeError


class _Group(click.Group):
    """Shows a tracejudge error as one line (exit 2 for bad input, 1 otherwise), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidArgumentError as exc:
            raise click.UsageError(str(exc), ctx) from exc
        except TraceJudgeError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(cls=_Group)
@click.option(
    "--tracking-uri",
    envvar="TRACEJUDGE_TRACKING_URI",
    default=None,
    help="Store to use (default: sqlite:///./tracejudge.db; env TRACEJUDGE_TRACKING_URI).",
)
@click.version_option(package_name="tracejudge")
def main(tracking_uri: str | None) -> None:
    """tracejudge: capture LLM-app traces and find the bad responses."""
    if tracking_uri:
        from tracejudge.store import set_tracking_uri

        set_tracking_uri(tracking_uri)


def _register() -> None:
    from tracejudge.cli.datasets import datasets
    from tracejudge.cli.demo import demo
    from tracejudge.cli.evaluate import evaluate_command
    from tracejudge.cli.experiments import experiments
    from tracejudge.cli.gc import gc_command
    from tracejudge.cli.judges import judges
    from tracejudge.cli.mlflow_transfer import export_command, import_mlflow_command
    from tracejudge.cli.monitor import monitor
    from tracejudge.cli.settings_command import settings_command
    from tracejudge.cli.traces import traces
    from tracejudge.server.main import server_command, ui_command

    main.add_command(experiments)
    main.add_command(traces)
    main.add_command(evaluate_command)
    main.add_command(datasets)
    main.add_command(demo)
    main.add_command(judges)
    main.add_command(monitor)
    main.add_command(settings_command)
    main.add_command(server_command)
    main.add_command(ui_command)
    main.add_command(import_mlflow_command)
    main.add_command(export_command)
    main.add_command(gc_command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
