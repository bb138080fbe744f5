"""How one hour's sums are computed from the traces: counts, errors and durations read from
the traces' covering time index and added up with numpy, the latency histogram of each hour
(``latency_sketch``), and the current feedback per name. ``hourly_rollups`` decides which
hours to compute, stores them and answers aggregates from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, case, func, or_, select, true

from tracejudge.store import latency_sketch, stats
from tracejudge.store import schema as s
from tracejudge.store.hourly_rollup_triggers import HOUR_MS

Part = tuple[int, int, Any]
"""(experiment, hour, tag value): a stored or computed part of the sums; the value is None
when not split by a tag (and for the traces without the tag when split)."""


FEEDBACK_FIELDS = ("verdicts", "scored", "score_sum", "judged", "passes")
"""Per feedback name and hour: current verdicts, how many have a numeric value and their sum,
how many are pass/fail words and how many of those pass."""


@dataclass
class Sums:
    """What is added up per hour, and then per group."""

    traces: int = 0
    errors: int = 0
    timed: int = 0
    duration_sum: int = 0
    histograms: list[bytes] = field(default_factory=list)
    feedback: dict[str, list[float]] = field(default_factory=dict)

    def add(self, other: Sums) -> None:
        self.traces += other.traces
        self.errors += other.errors
        self.timed += other.timed
        self.duration_sum += other.duration_sum
        self.histograms.extend(other.histograms)
        for name, sums in other.feedback.items():
            mine = self.feedback.setdefault(name, [0] * len(FEEDBACK_FIELDS))
            for i, value in enumerate(sums):
                mine[i] += value


LATERAL_UP_TO_HOURS = 24
"""PostgreSQL: feedback of up to this many hours is looked up trace by trace (LATERAL);
over more, one hash join with every current verdict is cheaper (see ``feedback_query``)."""


def hour_and_scope(key: int, ranges: Sequence[tuple[int, int]]) -> tuple[Any, tuple[Any, ...]]:
    t = s.traces.c
    hour = t.timestamp_ms - ((t.timestamp_ms % HOUR_MS) + HOUR_MS) % HOUR_MS
    scope = (
        t.experiment_id == key,
        or_(*(and_(t.timestamp_ms >= lo, t.timestamp_ms < hi) for lo, hi in ranges)),
    )
    return hour, scope


PER_TRACE = (
    func.coalesce(s.traces.c.execution_time_ms, 0),
    case((s.traces.c.execution_time_ms.is_(None), 0), else_=1),
    case((s.traces.c.status == "ERROR", 1), else_=0),
)
"""What each trace adds: its duration (0 when unknown), whether it has one, whether it failed."""


def add_up(which: np.ndarray, table: np.ndarray) -> list[Sums]:
    """Sums per group number (``which[i]`` is row i's group) of rows (duration, timed, error),
    with numpy: a million traces in well under a second, against three in a loop over rows."""
    timed = table[:, 1] == 1
    traces = np.bincount(which)
    errors = np.bincount(which, weights=table[:, 2], minlength=len(traces))
    timed_count = np.bincount(which, weights=timed, minlength=len(traces))
    duration_sum = np.bincount(which, weights=table[:, 0] * timed, minlength=len(traces))
    histograms = latency_sketch.by_group(which[timed], table[timed, 0])
    return [
        Sums(
            int(traces[i]),
            int(errors[i]),
            int(timed_count[i]),
            int(duration_sum[i]),
            [histograms.get(i, b"")],
        )
        for i in range(len(traces))
    ]


def from_traces(
    conn: Connection, key: int, ranges: Sequence[tuple[int, int]], feedback: bool
) -> dict[Part, Sums]:
    """Sums per hour of experiment ``key``'s traces that start in ``ranges``, read from the
    covering time index (experiment, start, id, status, duration); with ``feedback``, also
    their current feedback per name."""
    hour, scope = hour_and_scope(key, ranges)
    rows = conn.execute(select(hour, *PER_TRACE).where(*scope)).cursor.fetchall()
    if not rows:  # plain tuples above: no Row object per trace
        return {}
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    starts, which = np.unique(table[:, 0], return_inverse=True)
    sums = {
        (key, int(start), None): found
        for start, found in zip(starts.tolist(), add_up(which, table[:, 1:]), strict=True)
    }
    if feedback:
        span_hours = sum(hi - lo for lo, hi in ranges) / HOUR_MS
        lateral = conn.dialect.name == "postgresql" and span_hours <= LATERAL_UP_TO_HOURS
        query = feedback_query(hour, scope, lateral)
        for start, name, *values in conn.execute(query):
            sums[(key, int(start), None)].feedback[name] = [float(v) for v in values]
    return sums


def split_from_traces(
    conn: Connection, key: int, ranges: Sequence[tuple[int, int]], tag: str
) -> dict[Part, Sums]:
    """Sums per hour and value of ``tag`` (None: traces without it) of experiment ``key``'s
    traces that start in ``ranges``."""
    hour, scope = hour_and_scope(key, ranges)
    t, g = s.traces.c, s.trace_tags.c
    source = s.traces.outerjoin(s.trace_tags, and_(g.trace_id == t.trace_id, g.key == tag))
    rows = conn.execute(
        select(hour, *PER_TRACE, g.value).select_from(source).where(*scope)
    ).cursor.fetchall()
    if not rows:
        return {}
    codes: dict[Any, int] = {}
    values = np.fromiter((codes.setdefault(r[4], len(codes)) for r in rows), np.int64, len(rows))
    table = np.array([r[:4] for r in rows], dtype=np.int64)
    starts, hour_of = np.unique(table[:, 0], return_inverse=True)
    parts, which = np.unique(hour_of * len(codes) + values, return_inverse=True)
    names = list(codes)
    return {
        (key, int(starts[part // len(codes)]), names[part % len(codes)]): found
        for part, found in zip(parts.tolist(), add_up(which, table[:, 1:]), strict=True)
    }


def feedback_query(hour: Any, scope: Sequence[Any], lateral: bool) -> Any:
    """Per hour and name, the current feedback of the traces in ``scope``. ``lateral``
    (PostgreSQL, a few hours): each trace's verdicts looked up by its id; as a plain join
    PostgreSQL hashes every current verdict in the store to meet a few hours of traces (130
    ms for 4 hours at 1M traces, against 20 ms for one hour looked up), which pays off only
    over many hours. SQLite probes per trace either way."""
    t, a = s.traces.c, s.assessments.c
    current = (a.trace_id == t.trace_id, a.kind == "feedback", a.latest == true())
    if lateral:
        fb: Any = (
            select(a.assessment_id, a.name, a.numeric_value, a.string_value)
            .where(*current)
            .lateral("fb")
        )
        source = s.traces.join(fb, true())
        where = scope
    else:
        fb = s.assessments
        source = s.traces.join(s.assessments, current[0])
        where = (*scope, *current[1:])
    verdict = stats.verdict(fb.c.string_value)
    return (
        select(
            hour,
            fb.c.name,
            func.count(fb.c.assessment_id),
            func.count(fb.c.numeric_value),
            func.coalesce(func.sum(fb.c.numeric_value), 0.0),
            func.count(verdict),
            func.coalesce(func.sum(verdict), 0.0),
        )
        .select_from(source)
        .where(*where)
        .group_by(hour, fb.c.name)
    )
