"""Printing an evaluation run: its metrics, then the worst traces with their explanations."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from tracejudge.entities import EvaluationRun
from tracejudge.entities.assessment import numeric_value
from tracejudge.evaluation.result import EvaluationResult


def print_run_summary(console: Console, run: EvaluationRun) -> None:
    names = sorted({key.rsplit("/", 1)[0] for key in run.metrics})  # a name may hold "/"
    table = Table(title=f"Run {run.name} ({run.run_id}): {run.status.value}, {run.row_count} rows")
    for column in ("scorer", "mean", "pass rate", "min", "p90", "scored", "errors"):
        table.add_column(column, justify="left" if column == "scorer" else "right")

    def cell(name: str, stat: str) -> str:
        value = run.metrics.get(f"{name}/{stat}")
        return "" if value is None else (f"{value:.0%}" if stat == "pass_rate" else f"{value:.3g}")

    for name in names:
        table.add_row(
            name,
            cell(name, "mean"),
            cell(name, "pass_rate"),
            cell(name, "min"),
            cell(name, "p90"),
            cell(name, "count"),
            cell(name, "error_count"),
        )
    console.print(table)
    usage = run.usage
    cost = usage.get("cost_usd")
    console.print(
        f"model calls: {usage.get('calls', 0)} (+{usage.get('cached_calls', 0)} from cache), "
        f"tokens in/out: {usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}, "
        f"cost: {'unknown' if usage.get('calls_without_price') else f'${cost:.4f}'}, "
        f"judges: {', '.join(run.judge_models) or 'none'}"
    )
    if run.failure:
        console.print(f"[red]The run stopped ({run.status.value}): {run.failure}[/red]")
    if usage.get("verdicts_not_stored"):
        console.print(
            f"[red]{usage['verdicts_not_stored']} verdict(s) could not be stored (see the log).[/red]"
        )


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, dict) and len(value) == 1:  # {"question": "..."} reads better as "..."
        value = next(iter(value.values()))
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_worst(console: Console, result: EvaluationResult, order_by: str, limit: int = 10) -> None:
    """The rows with the lowest ``order_by`` verdict first, with the reasons given."""
    df = result.result_df
    column = f"{order_by}/value"
    if column not in df.columns:
        return
    scores = df[f"{order_by}/score"] if f"{order_by}/score" in df.columns else [None] * len(df)
    numbers = [
        s if isinstance(s, float) else (numeric_value(v) if not isinstance(v, list) else None)
        for v, s in zip(df[column], scores, strict=True)
    ]
    keys = pd.Series([float("nan") if n is None else n for n in numbers], index=df.index)
    ranked = df.assign(_key=keys)
    ranked = ranked.sort_values("_key", na_position="last").head(limit)
    reason_columns = [c for c in df.columns if c.endswith("/rationale")]
    console.print(f"\n[bold]Least {order_by.replace('_', ' ')} first[/bold]")
    for rank, (_, row) in enumerate(ranked.iterrows(), 1):
        score, key = row[column], row["_key"]
        shown = f"{score:.2f}" if isinstance(score, float) else str(score)
        if not isinstance(score, float) and key == key:  # a verdict with a continuous score
            shown = f"{shown} ({key:.2f})"
        console.print(f"\n[bold]{rank}. {order_by} = {shown}[/bold]  {row['trace_id']}")
        console.print(f"   [cyan]Q:[/cyan] {_short(row['inputs'])}")
        console.print(f"   [cyan]A:[/cyan] {_short(row['outputs'])}")
        for rc in reason_columns:
            name = rc[: -len("/rationale")]
            verdict, reason, error = row.get(f"{name}/value"), row.get(rc), row.get(f"{name}/error")
            if isinstance(verdict, list) or (reason is None and error is None):
                continue
            value = f"{verdict:.2f}" if isinstance(verdict, float) else verdict
            score = row.get(f"{name}/score")
            if isinstance(score, float) and not isinstance(verdict, float):
                value = f"{value} ({score:.2f})"
            console.print(f"   [magenta]{name}[/magenta] = {value}: {_short(error or reason, 300)}")
            if row.get(f"{name}/suspected_injection") is True:
                console.print(
                    f"   [bold red]⚠ {name}: the judged text looks like a prompt injection "
                    "(text addressed to the evaluator was taken out before judging)[/bold red]"
                )
