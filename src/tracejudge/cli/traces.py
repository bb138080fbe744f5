"""``tracejudge traces search``: the filter language from the shell, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys

import click
from rich.console import Console
from rich.table import Table

from tracejudge.entities import Feedback, Trace
from tracejudge.errors import ExperimentNotFoundError
from tracejudge.store import get_store
from tracejudge.tracing.client import Client


def _latest_feedback(trace: Trace) -> dict[str, object]:
    values: dict[str, object] = {}
    for a in trace.info.assessments:  # oldest first, so the newest valid one wins
        if isinstance(a, Feedback) and a.valid:
            values[a.name] = a.value if a.error is None else f"error: {a.error.error_code}"
    return values


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


def _short(text: str | None, n: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def experiment_ids_for(names: tuple[str, ...]) -> list[str] | None:
    if not names:
        return None
    ids = []
    for name in names:
        exp = get_store().get_experiment_by_name(name)
        if exp is None:
            raise ExperimentNotFoundError(f"No experiment named {name!r}.")
        ids.append(exp.experiment_id)
    return ids


experiments_option = click.option(
    "--experiment", "experiments", multiple=True, help="Experiment name (repeatable; default: all)."
)


def experiment_ids_or_all(client: Client, names: tuple[str, ...]) -> list[str]:
    """The named experiments' ids, or every experiment's when none is named."""
    return experiment_ids_for(names) or [e.experiment_id for e in client.list_experiments()]


@click.group()
def traces() -> None:
    """Search and read traces."""


@traces.command("search")
@experiments_option
@click.option(
    "--filter",
    "filter_string",
    default=None,
    help="e.g. \"tag.env = 'prod' AND feedback.trustworthiness < 0.5\"",
)
@click.option(
    "--order-by",
    "order_by",
    multiple=True,
    help="e.g. 'feedback.trustworthiness ASC' (repeatable).",
)
@click.option("--max-results", default=100, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--spans/--no-spans", default=False, help="Include spans in JSON output.")
def search(
    experiments: tuple[str, ...],
    filter_string: str | None,
    order_by: tuple[str, ...],
    max_results: int,
    fmt: str,
    spans: bool,
) -> None:
    """Find traces with the filter language (AND, OR, parentheses) and print them."""
    client = Client()
    found = client.search_all(
        experiment_ids_or_all(client, experiments),
        filter_string=filter_string,
        max_results=max_results,
        order_by=list(order_by) or None,
        include_spans=spans and fmt == "json",
    )
    if fmt == "json":
        json.dump([t.to_dict() for t in found], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif fmt == "csv":
        _write_csv(found)
    else:
        _print_table(found)


def _print_table(found: list[Trace]) -> None:
    table = Table()
    table.add_column("trace_id", no_wrap=True, min_width=35)
    table.add_column("time", no_wrap=True)
    for name in ("state", "ms"):
        table.add_column(name)
    for name in ("request", "response", "feedback"):
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    for t in found:
        info = t.info
        feedback = ", ".join(f"{k}={v}" for k, v in _latest_feedback(t).items())
        table.add_row(
            info.trace_id,
            _when(info.request_time),
            info.state.value,
            "" if info.execution_duration is None else str(info.execution_duration),
            _short(info.request_preview),
            _short(info.response_preview),
            _short(feedback, 50),
        )
    console = Console()
    console.print(table)
    console.print(f"{len(found)} trace(s)")


def _write_csv(found: list[Trace]) -> None:
    feedback_names = sorted({name for t in found for name in _latest_feedback(t)})
    writer = csv.writer(sys.stdout)
    writer.writerow(
        [
            "trace_id",
            "request_time",
            "state",
            "execution_duration",
            "name",
            "request_preview",
            "response_preview",
            "tags",
            *[f"feedback.{n}" for n in feedback_names],
        ]
    )
    for t in found:
        info, feedback = t.info, _latest_feedback(t)
        writer.writerow(
            [
                info.trace_id,
                info.request_time,
                info.state.value,
                info.execution_duration,
                info.name,
                info.request_preview,
                info.response_preview,
                json.dumps(info.tags),
                *[feedback.get(n, "") for n in feedback_names],
            ]
        )


def _stat_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@traces.command("stats")
@experiments_option
@click.option("--filter", "filter_string", default=None, help="Which traces (filter language).")
@click.option("--group-by", default=None, help="hour, day or tag.<key> (default: one row for all).")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="count, error_rate, mean_latency, p95_latency, feedback.<name>.mean|pass_rate|count "
    "(repeatable; default: count, error_rate, p50_latency).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def stats(
    experiments: tuple[str, ...],
    filter_string: str | None,
    group_by: str | None,
    metrics: tuple[str, ...],
    fmt: str,
) -> None:
    """Counts, error rate, latency percentiles and verdict statistics per hour, day or tag."""
    client = Client()
    rows = client.trace_stats(
        experiment_ids_or_all(client, experiments),
        filter_string=filter_string,
        group_by=group_by,
        metrics=list(metrics) or None,
    )
    if fmt == "json":
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    table = Table()
    columns = list(rows[0]) if rows else ["group"]
    for name in columns:
        table.add_column(name, justify="left" if name == "group" else "right")
    for row in rows:
        group = row["group"]
        if group_by in ("hour", "day") and isinstance(group, int):
            group = dt.datetime.fromtimestamp(group / 1000, dt.timezone.utc).strftime(
                "%Y-%m-%d %H:%M" if group_by == "hour" else "%Y-%m-%d"
            )
        table.add_row(str(group), *(_stat_cell(row[c]) for c in columns[1:]))
    Console().print(table)
