"""``tracejudge settings``: every TRACEJUDGE_* variable, its value here, default and meaning."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from tracejudge import settings


@click.command("settings")
def settings_command() -> None:
    """List the TRACEJUDGE_* environment variables and check the ones that are set."""
    table = Table(title="tracejudge settings (environment variables)")
    table.add_column("variable", no_wrap=True)
    for column in ("value", "default", "meaning"):
        table.add_column(column, overflow="fold")
    problems = []
    for setting in settings.ALL:
        raw = setting.raw()
        shown = "" if raw is None else raw
        try:
            setting.get()
        except settings.InvalidSettingError as exc:
            problems.append(str(exc))
            shown = f"[red]{raw}  (invalid)[/red]"
        default = "" if setting.default is None else str(setting.default)
        table.add_row(setting.name, shown, default, setting.help)
    console = Console()
    console.print(table)
    if problems:
        raise click.ClickException("; ".join(problems))
