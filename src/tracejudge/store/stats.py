"""Aggregates over traces for dashboards, computed in SQL: counts, error rates, latency
percentiles and verdict statistics, per hour, per day or per tag value. This is the scan of
the matching traces; aggregates filtered by at most a time range read per-hour sums instead
(``hourly_rollups``).

Percentiles are *nearest rank* (the smallest latency with at least that share of traces at or
below it) on both databases: ``percentile_disc`` on PostgreSQL; SQLite, which has no percentile
function, reads the durations and they are ranked here. Feedback statistics look at each
trace's current verdict of that name (the ``latest`` one): ``mean`` averages its numeric value
(a judge's score where it records one), ``pass_rate`` is the share of pass/fail verdicts that
pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    func,
    literal,
    select,
    true,
)

from tracejudge.entities.assessment import FAILING_WORDS, PASSING_WORDS
from tracejudge.errors import InvalidArgumentError
from tracejudge.store import schema as s
from tracejudge.store.plan_hints import NotIndexed

GROUPS = {"hour": 3_600_000, "day": 86_400_000}
"""Time buckets (UTC, by trace start) and their width in milliseconds."""

_LATENCY = re.compile(r"^p(\d{1,2})_latency$")
_FEEDBACK = re.compile(r"^feedback\.(.+)\.(mean|pass_rate|count)$")
DEFAULT_METRICS = ("count", "error_rate", "p50_latency")
PG_WORK_MEM = "64MB"
"""Memory PostgreSQL may use per sort or hash table of one aggregate query."""


@dataclass(frozen=True)
class Metric:
    """One requested statistic: its name as asked and what it measures."""

    name: str
    kind: str  # count | error_rate | mean_latency | percentile | feedback
    percentile: float | None = None
    feedback: str | None = None
    statistic: str | None = None


def parse_metric(name: str) -> Metric:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"A metric is a string, not {name!r}.")
    if name in ("count", "error_rate", "mean_latency"):
        return Metric(name, name)
    latency = _LATENCY.match(name)
    if latency and 1 <= int(latency.group(1)) <= 99:
        return Metric(name, "percentile", percentile=int(latency.group(1)) / 100)
    feedback = _FEEDBACK.match(name)
    if feedback:
        return Metric(name, "feedback", feedback=feedback.group(1), statistic=feedback.group(2))
    raise InvalidArgumentError(
        f"Unknown metric {name!r}; expected count, error_rate, mean_latency, p<1-99>_latency "
        "(p50_latency, p95_latency…) or feedback.<name>.mean|pass_rate|count."
    )


def parse_group(group_by: str | None) -> str | None:
    """``hour``, ``day``, ``tag.<key>`` or None (one row for everything)."""
    if group_by is None or group_by in GROUPS:
        return group_by
    if isinstance(group_by, str) and group_by.startswith("tag.") and len(group_by) > 4:
        return group_by
    raise InvalidArgumentError(
        f"Cannot group by {group_by!r}; expected 'hour', 'day', 'tag.<key>' or None."
    )


def _group_key(group_by: str | None) -> tuple[ColumnElement[Any], Any]:
    """The group's expression and the FROM clause it needs."""
    t = s.traces
    if group_by is None:
        return literal(None).label("group"), t
    if group_by in GROUPS:
        width = GROUPS[group_by]
        return ((t.c.timestamp_ms // width) * width).label("group"), t
    tags = s.trace_tags.alias("group_tag")
    joined = t.outerjoin(
        tags, and_(tags.c.trace_id == t.c.trace_id, tags.c.key == group_by[len("tag.") :])
    )
    return tags.c.value.label("group"), joined


def verdict(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """1 for a passing verdict, 0 for a failing one, NULL for anything else."""
    word = func.lower(column)
    return case(
        (word.in_(sorted(PASSING_WORDS)), 1.0),
        (word.in_(sorted(FAILING_WORDS)), 0.0),
        else_=None,
    )


def _base_query(
    metrics: Sequence[Metric],
    group_by: str | None,
    where: Sequence[ColumnElement[bool]],
    percentiles: bool,
) -> Select[Any]:
    """Every metric in one pass over the matching traces; the percentiles only if
    ``percentiles`` (PostgreSQL's ``percentile_disc``: each trace joins at most one tag and
    one current verdict per name, so the join leaves the durations as they are)."""
    t = s.traces.c
    group, source = _group_key(group_by)
    columns: list[ColumnElement[Any]] = [group, func.count().label("count")]
    joined = source
    verdicts: dict[str, Any] = {}
    for metric in metrics:
        if metric.kind == "error_rate":
            columns.append(func.avg(case((t.status == "ERROR", 1.0), else_=0.0)).label(metric.name))
        elif metric.kind == "mean_latency":
            columns.append(func.avg(t.execution_time_ms).label(metric.name))
        elif metric.kind == "feedback":
            assert metric.feedback is not None
            a = verdicts.get(metric.feedback)
            if a is None:
                a = s.assessments.alias(f"fb{len(verdicts)}")
                verdicts[metric.feedback] = a
                joined = joined.outerjoin(
                    a,
                    and_(
                        a.c.trace_id == t.trace_id,
                        NotIndexed(a.c.kind) == "feedback",  # the per-trace index (plan_hints)
                        a.c.name == metric.feedback,
                        a.c.latest == true(),
                    ),
                )
            if metric.statistic == "mean":
                columns.append(func.avg(a.c.numeric_value).label(metric.name))
            elif metric.statistic == "pass_rate":
                columns.append(func.avg(verdict(a.c.string_value)).label(metric.name))
            else:
                columns.append(func.count(a.c.assessment_id).label(metric.name))
        elif metric.kind == "percentile" and percentiles:
            columns.append(
                func.percentile_disc(metric.percentile)
                .within_group(t.execution_time_ms)
                .label(metric.name)
            )
    query = select(*columns).select_from(joined).where(*where)
    return query.group_by(group) if group_by is not None else query


def _percentiles_sqlite(
    conn: Connection,
    metrics: Sequence[Metric],
    group_by: str | None,
    where: Sequence[ColumnElement[bool]],
) -> dict[Any, dict[str, Any]]:
    """SQLite has no percentile function: the durations are read (from the covering time
    index when the filter allows) and ranked here. A ranking window did the same in SQL at a
    tenth of the speed (3.1 s against 0.3 s over 1M traces)."""
    group, source = _group_key(group_by)
    latency = s.traces.c.execution_time_ms
    query = select(group, latency).select_from(source).where(*where, latency.is_not(None))
    by_group: dict[Any, list[int]] = {}
    for key, value in conn.execute(query):
        by_group.setdefault(key, []).append(value)
    out: dict[Any, dict[str, Any]] = {}
    for key, values in by_group.items():
        values.sort()
        out[key] = {
            m.name: values[max(1, math.ceil(float(m.percentile or 0) * len(values))) - 1]
            for m in metrics
        }
    return out


def compute(
    conn: Connection,
    dialect: str,
    where: Sequence[ColumnElement[bool]],
    group_by: str | None,
    metric_names: Sequence[str],
) -> list[dict[str, Any]]:
    """One dict per group, ordered by group: ``{"group": …, "<metric>": value, …}``."""
    metrics = [parse_metric(m) for m in metric_names]
    group_by = parse_group(group_by)
    postgresql = dialect == "postgresql"
    if postgresql:
        # Sorts and hash tables of an aggregate over a million traces outgrow the default
        # 4 MB and spill to disk (a per-hour breakdown of a day took 520 ms, 300 of them in
        # an on-disk hash join); for this transaction only.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
    rows: dict[Any, dict[str, Any]] = {}
    for r in conn.execute(_base_query(metrics, group_by, where, postgresql)).mappings():
        rows[r["group"]] = {"group": r["group"], "count": r["count"]} | {
            m.name: r[m.name] for m in metrics if m.kind != "percentile" or postgresql
        }
    percentiles = [m for m in metrics if m.kind == "percentile"]
    if percentiles and rows and not postgresql:
        for key, found in _percentiles_sqlite(conn, percentiles, group_by, where).items():
            if key in rows:
                rows[key].update(found)
    out = []
    for key in sorted(rows, key=lambda g: (g is None, g)):
        row = rows[key]
        out.append(
            {"group": _plain(row["group"])} | {m.name: _plain(row.get(m.name)) for m in metrics}
        )
    return out


def _plain(value: Any) -> Any:
    """PostgreSQL returns averages as Decimal: give floats, as SQLite does."""
    return float(value) if isinstance(value, Decimal) else value
