"""``tracejudge monitor [--once]`` and ``tracejudge monitor status``."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from tracejudge.store import get_store

if TYPE_CHECKING:
    from tracejudge.monitoring import MonitorOptions, PassReport, ScorerStatusReport


def _experiment_ids(experiments: tuple[str, ...]) -> list[str] | None:
    if not experiments:
        return None
    from tracejudge.scorers.registration import resolve_experiment

    store = get_store()
    return [resolve_experiment(store, e) for e in experiments]


@click.group(invoke_without_command=True)
@click.option("--experiment", "experiments", multiple=True, help="Only these (names or ids).")
@click.option("--once", is_flag=True, help="One pass over every started scorer, then exit.")
@click.option("--poll-s", default=5.0, show_default=True, help="Seconds between passes.")
@click.option(
    "--settle-s", default=30.0, show_default=True, help="Score a trace this long after it started."
)
@click.option(
    "--lease-s",
    default=600.0,
    show_default=True,
    help="Take over a claim this old (its monitor died).",
)
@click.option(
    "--concurrency", default=8, show_default=True, help="Traces scored at once per scorer."
)
@click.option(
    "--ray-address",
    default=None,
    help='Run the monitor as Ray actors on this cluster ("auto", "ray://head:10001"; "local" '
    "starts one here); they share the work through the store's claims.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --ray-address: monitor actors.",
)
@click.pass_context
def monitor(
    ctx: click.Context,
    experiments: tuple[str, ...],
    once: bool,
    poll_s: float,
    settle_s: float,
    lease_s: float,
    concurrency: int,
    ray_address: str | None,
    workers: int,
) -> None:
    """Run the started scorers on new traces (several processes may share one store)."""
    if ctx.invoked_subcommand is not None:
        return
    from tracejudge.monitoring import Monitor, MonitorOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the store's schema check is not news
    options = MonitorOptions(settle_s=settle_s, lease_s=lease_s, concurrency=concurrency)
    console = Console()
    if ray_address is not None:
        _monitor_on_ray(console, ray_address, workers, experiments, options, once, poll_s)
        return
    runner = Monitor(get_store(), _experiment_ids(experiments), options)
    if once:
        report = runner.run_once()
        _print_pass(console, report)
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"tracejudge monitor {runner.owner} running (Ctrl-C stops it)")
    runner.run_forever(poll_s, stop)


def _print_pass(console: Console, report: PassReport) -> None:
    for p in report.scorers:
        detail = f" ({p.skipped})" if p.skipped else ""
        console.print(
            f"{p.name} v{p.version}: read {p.read}, sampled {p.sampled}, claimed {p.claimed}, "
            f"scored {p.scored}, failed {p.failed}, given back {p.released}{detail}"
        )
    console.print(f"scored {report.scored} trace(s)")


def _monitor_on_ray(
    console: Console,
    address: str,
    workers: int,
    experiments: tuple[str, ...],
    options: MonitorOptions,
    once: bool,
    poll_s: float,
) -> None:
    from tracejudge.monitoring.ray_monitor import RayMonitor
    from tracejudge.store import get_tracking_uri

    ray_monitor = RayMonitor(
        None if address == "local" else address, workers, _experiment_ids(experiments), options
    )
    if once:
        _print_pass(console, ray_monitor.run_once(get_tracking_uri()))
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"tracejudge monitor: {workers} worker(s) on Ray (Ctrl-C stops them)")
    ray_monitor.run_forever(get_tracking_uri(), poll_s, stop)


@monitor.command("status")
@click.option("--experiment", default=None, help="Only this experiment (name or id).")
def status(experiment: str | None) -> None:
    """Per registered scorer: state, what it did in the last hour and day, backlog (and how long
    its oldest trace has waited), spend and pass rate per hour of trace arrival."""
    from tracejudge.monitoring import monitor_status

    ids = _experiment_ids((experiment,) if experiment else ())
    reports = monitor_status(get_store(), ids[0] if ids else None)
    console = Console()
    if not reports:
        console.print("No scorer is registered.")
        return
    rows = [_status_row(r) for r in reports]
    if console.width >= WIDE:
        table = Table(*STATUS_COLUMNS)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    for row in rows:  # a narrow terminal: one block per scorer, every figure readable
        block = Table.grid(padding=(0, 2))
        for label, value in zip(STATUS_COLUMNS[1:], row[1:], strict=True):
            block.add_row(label, value.replace("\n", " "))
        console.print(f"[bold]{row[0]}[/bold]")
        console.print(block)


WIDE = 160
"""Columns from which the status is one table; below, one block per scorer."""
STATUS_COLUMNS = (
    "scorer",
    "version",
    "state",
    "sample",
    "hour: sampled/scored/failed",
    "day: sampled/scored/failed",
    "backlog",
    "spend (day)",
    "pass rate (hour / day)",
    "pass rate per hour, oldest first",
)


def _status_row(r: ScorerStatusReport) -> tuple[str, ...]:
    h, d = r.last_hour, r.last_day

    def rate(used: dict[str, Any]) -> str:
        return "-" if used["pass_rate"] is None else f"{used['pass_rate']:.0%}"

    trend = " ".join(
        f"{dt.datetime.fromtimestamp(hour / 1000).strftime('%H')}h:{p:.0%}"
        for hour, p, _ in r.pass_rate_by_hour[-8:]
    )
    return (
        r.name,
        str(r.version),
        r.state + (f"\n{r.detail}" if r.detail else ""),
        f"{r.sample_rate:g}" + (f"\n{r.filter_string}" if r.filter_string else ""),
        f"{h['sampled']}/{h['scored']}/{h['failed']}",
        f"{d['sampled']}/{d['scored']}/{d['failed']}",
        f"{r.backlog}{'+' if r.backlog_capped else ''}"
        + (f"\noldest {r.lag_s:.0f} s" if r.backlog else ""),
        f"${d['cost']:.4f} ({d['calls']} calls)",
        f"{rate(h)} / {rate(d)}",
        trend or "-",
    )
