"""Per-hour sums of each experiment's traces and their feedback, so that dashboard aggregates
over days or the whole store read a row per hour instead of every trace.

``trace_stats`` answers from here when the filter is at most a time range: grouped by hour,
day or nothing with any metric (count, error_rate, mean_latency, p<N>_latency,
feedback.<name>.mean|pass_rate|count), or by a tag's value without the feedback metrics (an
hour's split by that tag is stored the first time it is asked for). Anything else (a tag or
verdict filter) scans the matching traces (``stats``). Counts, rates and means are exact;
percentiles come from the hours' latency histograms and are within 0.5 % + 0.5 ms of the exact
nearest-rank value (``latency_sketch``).

How the rows stay true: an hour is stored only once it has ended, and triggers on ``traces``,
``assessments`` and ``trace_tags`` delete the row of every hour a write or delete touches
(late spans, a status update, a trace logged with an old start time, a new verdict, a tag set
later, retention), with its feedback and tag splits, so the next aggregate computes that hour
again (``hourly_rollup_triggers``).
Whatever is not stored — the current hour, hours a time filter cuts in part, hours just
invalidated — is computed from the traces' covering time index at query time.

Two writers racing a reader: on SQLite the reader computes and stores an hour inside one
``BEGIN IMMEDIATE`` transaction, so no write can land in between. On PostgreSQL the triggers
take a shared advisory lock per (experiment, hour) they touch, held to commit, and the reader
stores only the hours whose exclusive lock it gets without waiting (``pg_try_advisory_xact_lock``)
and computes them after taking it: a write still uncommitted at that moment holds the shared
lock, and a later one waits for the reader and then deletes what it stored. The reader never
waits, so it cannot deadlock with writers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text, tuple_
from sqlalchemy.exc import DBAPIError

from tracejudge.query.ast import And, Comparison, Expr
from tracejudge.store import filter_sql, hourly_sums, latency_sketch, stats
from tracejudge.store import schema as s
from tracejudge.store.engine import immediate_transaction
from tracejudge.store.hourly_rollup_triggers import HOUR_MS, lock_key_sql
from tracejudge.store.hourly_sums import FEEDBACK_FIELDS, Part, Sums

logger = logging.getLogger(__name__)

HOURS_PER_TRANSACTION = 48
TRANSACTION_SECONDS = 0.05
MAX_HOURS_PER_TRANSACTION = 10_000
"""On SQLite, missing hours are computed and stored in transactions of 48 hours at first,
then sized to take about 50 ms each: that bounds how long writers wait behind a first
aggregate over a large store (the write lock is held while hours are computed and stored),
and lets long stretches without traces go in a few transactions. PostgreSQL's writers wait
only for the hours being computed (old ones), so it computes up to 10,000 hours at once."""
_METRIC_KINDS = {"count", "error_rate", "mean_latency", "percentile", "feedback"}


def answers(parsed: Expr | None, group_by: str | None, metric_names: Sequence[str]) -> bool:
    """Whether an aggregate can be read from the hourly rows (raises as ``stats`` does on an
    unknown metric or group)."""
    metrics = [stats.parse_metric(m) for m in metric_names]
    group_by = stats.parse_group(group_by)
    if any(m.kind not in _METRIC_KINDS for m in metrics):
        return False
    if _tag_key(group_by) is not None and any(m.kind == "feedback" for m in metrics):
        return False  # feedback is summed per hour, not per tag value
    return _time_range(parsed) is not None


def _tag_key(group_by: str | None) -> str | None:
    return group_by[len("tag.") :] if group_by and group_by.startswith("tag.") else None


def _time_range(parsed: Expr | None) -> tuple[int | None, int | None] | None:
    """``[start, end)`` in whole ms when the filter is only bounds on the start time (or
    nothing), else None."""
    lo: int | None = None
    hi: int | None = None
    pending: list[Expr] = [] if parsed is None else [parsed]
    while pending:
        head = pending.pop()
        if isinstance(head, And):
            pending.extend(head.items)
            continue
        if not isinstance(head, Comparison) or not _is_time_bound(head):
            return None
        value = float(head.value)  # type: ignore[arg-type]
        if head.op in (">", ">="):
            start = math.floor(value) + 1 if head.op == ">" else math.ceil(value)
            lo = start if lo is None else max(lo, start)
        else:
            end = math.ceil(value) if head.op == "<" else math.floor(value) + 1
            hi = end if hi is None else min(hi, end)
    return lo, hi


def _is_time_bound(cmp: Comparison) -> bool:
    """A bound on the start time by a number (``filter_sql.is_time_bound``)."""
    return (
        filter_sql.is_time_bound(cmp)
        and isinstance(cmp.value, int | float)
        and not isinstance(cmp.value, bool)
    )


def compute(
    engine: Engine,
    experiment_keys: Sequence[int] | None,
    parsed: Expr | None,
    group_by: str | None,
    metric_names: Sequence[str],
    now_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The same rows as ``stats.compute`` for an aggregate that ``answers`` accepts."""
    bounds = _time_range(parsed)
    assert bounds is not None
    first, last = bounds
    metrics = [stats.parse_metric(m) for m in metric_names]
    feedback = any(m.kind == "feedback" for m in metrics)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms

    with engine.connect() as conn:
        extents = _extents(conn, experiment_keys, first, last)
        wholes = {
            key: _whole_hours(lo, hi, first, last, now_ms) for key, (lo, hi) in extents.items()
        }
        tag = _tag_key(group_by)
        if tag is None:
            parts, present = _stored(conn, wholes)
        else:
            parts, present = _stored_split(conn, wholes, tag)
    missing = [(key, h) for key, hs in wholes.items() for h in hs if (key, h) not in present]
    parts.update(_compute_and_store_all(engine, missing, tag))
    with engine.connect() as conn:  # the parts of hours that are not whole: read as they are
        for key, (lo, hi) in extents.items():
            ranges = _uncovered(lo, hi, wholes[key])
            if not ranges:
                continue
            found = (
                hourly_sums.from_traces(conn, key, ranges, feedback)
                if tag is None
                else hourly_sums.split_from_traces(conn, key, ranges, tag)
            )
            for part, sums in found.items():
                parts.setdefault(part, Sums()).add(sums)
    groups: dict[Any, Sums] = {}
    for (_, hour, value), sums in parts.items():
        if sums.traces == 0:
            continue
        if tag is not None:
            group = value
        elif group_by is None:
            group = None
        else:
            group = hour // stats.GROUPS[group_by] * stats.GROUPS[group_by]
        groups.setdefault(group, Sums()).add(sums)
    if group_by is None and not groups:
        groups[None] = Sums()
    return [
        _row(group, groups[group], metrics)
        for group in sorted(groups, key=lambda g: (g is None, g))
    ]


def fill(
    engine: Engine, experiment_keys: Sequence[int] | None = None, now_ms: int | None = None
) -> int:
    """Compute and store every ended hour not stored yet (without tag splits), so that the
    next aggregate over them reads stored rows only; returns how many hours it computed. The
    tracking server runs this in the background (``rollup_filler``): without it the first
    aggregate over a large store computes every hour it covers while the user waits."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    h = s.trace_hours.c
    missing: list[tuple[int, int]] = []
    with engine.connect() as conn:
        for key, (lo, hi) in _extents(conn, experiment_keys, None, None).items():
            whole = _whole_hours(lo, hi, None, None, now_ms)
            if not whole:
                continue
            stored = select(h.hour_ms).where(
                h.experiment_id == key, h.hour_ms.between(whole[0], whole[-1])
            )
            present = set(conn.execute(stored).scalars())
            missing += [(key, hour) for hour in whole if hour not in present]
    _compute_and_store_all(engine, missing, None)
    return len(missing)


def _compute_and_store_all(
    engine: Engine, missing: Sequence[tuple[int, int]], tag: str | None
) -> dict[Part, Sums]:
    """``_compute_and_store`` over ``missing`` in transactions sized as HOURS_PER_TRANSACTION
    says."""
    parts: dict[Part, Sums] = {}
    sqlite = engine.dialect.name == "sqlite"
    size, start = HOURS_PER_TRANSACTION if sqlite else MAX_HOURS_PER_TRANSACTION, 0
    while start < len(missing):
        began = time.perf_counter()
        parts.update(_compute_and_store(engine, missing[start : start + size], tag))
        start += size
        if sqlite:  # SQLite's writers wait meanwhile: about TRANSACTION_SECONDS each
            took = max(time.perf_counter() - began, 1e-3)
            size = int(min(MAX_HOURS_PER_TRANSACTION, max(1, size * TRANSACTION_SECONDS / took)))
    return parts


def _row(group: Any, sums: Sums, metrics: Sequence[stats.Metric]) -> dict[str, Any]:
    row: dict[str, Any] = {"group": group}
    histogram = None
    for metric in metrics:
        if metric.kind == "count":
            row[metric.name] = sums.traces
        elif metric.kind == "error_rate":
            row[metric.name] = sums.errors / sums.traces if sums.traces else None
        elif metric.kind == "mean_latency":
            row[metric.name] = sums.duration_sum / sums.timed if sums.timed else None
        elif metric.kind == "feedback":
            verdicts, scored, score_sum, judged, passes = sums.feedback.get(
                str(metric.feedback), [0] * len(FEEDBACK_FIELDS)
            )
            if metric.statistic == "mean":
                row[metric.name] = score_sum / scored if scored else None
            elif metric.statistic == "pass_rate":
                row[metric.name] = passes / judged if judged else None
            else:
                row[metric.name] = int(verdicts)
        else:
            if histogram is None:
                histogram = latency_sketch.merge(sums.histograms)
            row[metric.name] = latency_sketch.percentile(histogram, float(metric.percentile or 0))
    return row


def _whole_hours(lo: int, hi: int, first: int | None, last: int | None, now_ms: int) -> range:
    """The starts of the hours that overlap the traces' ``[lo, hi)``, lie wholly inside the
    filter's ``[first, last)`` and have ended by ``now_ms``."""
    start = lo // HOUR_MS * HOUR_MS
    if first is not None:
        start = max(start, -(-first // HOUR_MS) * HOUR_MS)
    end = min((hi - 1) // HOUR_MS * HOUR_MS + HOUR_MS, now_ms // HOUR_MS * HOUR_MS)
    if last is not None:
        end = min(end, last // HOUR_MS * HOUR_MS)
    return range(start, max(start, end), HOUR_MS)


def _uncovered(lo: int, hi: int, whole: Sequence[int]) -> list[tuple[int, int]]:
    """The parts of ``[lo, hi)`` outside the whole hours ``whole`` (sorted, contiguous)."""
    if not whole:
        return [(lo, hi)] if lo < hi else []
    out = []
    if lo < whole[0]:
        out.append((lo, whole[0]))
    if whole[-1] + HOUR_MS < hi:
        out.append((whole[-1] + HOUR_MS, hi))
    return out


def _extents(
    conn: Connection, keys: Sequence[int] | None, lo: int | None, hi: int | None
) -> dict[int, tuple[int, int]]:
    """Per experiment in scope, ``[lo, hi)`` narrowed to the start times it holds (two index
    probes each); experiments with no trace in range are left out."""
    if keys is None:
        keys = list(conn.execute(select(s.experiments.c.experiment_id)).scalars())
    t = s.traces.c
    out = {}
    for key in keys:
        scope = [t.experiment_id == key]
        if lo is not None:
            scope.append(t.timestamp_ms >= lo)
        if hi is not None:
            scope.append(t.timestamp_ms < hi)
        first = conn.execute(select(func.min(t.timestamp_ms)).where(*scope)).scalar()
        if first is None:
            continue
        last = conn.execute(select(func.max(t.timestamp_ms)).where(*scope)).scalar_one()
        out[key] = (int(first), int(last) + 1)
    return out


def _stored(
    conn: Connection, wholes: dict[int, range]
) -> tuple[dict[Part, Sums], set[tuple[int, int]]]:
    """The stored sums of hours with traces, and every stored (experiment, hour), the hours
    known to be empty included (read as bare keys: a store with long quiet stretches holds
    many of them)."""
    h = s.trace_hours.c
    f = s.feedback_hours.c
    out: dict[Part, Sums] = {}
    present: set[tuple[int, int]] = set()
    for key, hours in wholes.items():
        if not hours:
            continue
        span = (hours[0], hours[-1])
        in_span = (h.experiment_id == key, h.hour_ms.between(*span))
        empty = select(h.hour_ms).where(*in_span, h.traces == 0)
        present.update((key, hour) for hour in conn.execute(empty).scalars())
        for r in conn.execute(select(s.trace_hours).where(*in_span, h.traces > 0)):
            out[(key, r.hour_ms, None)] = _sums_of(r)
            present.add((key, r.hour_ms))
        query = select(s.feedback_hours).where(f.experiment_id == key, f.hour_ms.between(*span))
        for r in conn.execute(query):
            found = out.get((key, r.hour_ms, None))
            if found is not None:  # else its hour was deleted since the read above
                found.feedback[r.name] = [getattr(r, name) for name in FEEDBACK_FIELDS]
    return out, present


def _stored_split(
    conn: Connection, wholes: dict[int, range], tag: str
) -> tuple[dict[Part, Sums], set[tuple[int, int]]]:
    """The stored split of hours by ``tag``'s value; an (experiment, hour) counts as stored
    when its row for the traces without the tag is there."""
    g = s.tag_hours.c
    out: dict[Part, Sums] = {}
    present: set[tuple[int, int]] = set()
    for key, hours in wholes.items():
        if not hours:
            continue
        query = select(s.tag_hours).where(
            g.experiment_id == key, g.key == tag, g.hour_ms.between(hours[0], hours[-1])
        )
        for r in conn.execute(query):
            if r.value is None:
                present.add((key, r.hour_ms))
            if r.traces:
                out[(key, r.hour_ms, r.value)] = _sums_of(r)
    return out, present


def _compute_and_store(
    engine: Engine, hours: Sequence[tuple[int, int]], tag: str | None
) -> dict[Part, Sums]:
    """Compute these whole, ended hours from the traces (split by ``tag``'s value if given)
    and store them; an hour that cannot be stored now (locked by a writer, a read-only store)
    is still computed and returned."""
    try:
        with _writing(engine) as conn:
            if engine.dialect.name == "postgresql":
                storable = set(_try_locks(conn, hours))
            else:
                storable = set(hours)
            computed = _computed_hours(conn, hours, None)
            split = _computed_hours(conn, hours, tag) if tag is not None else computed
            if storable:
                # the hour's sums are stored again with the split: storing them deletes every
                # split of the hour (cascade), so a split is never left without its hour
                _store(conn, {p: v for p, v in computed.items() if p[:2] in storable})
                if tag is not None:
                    _store_split(conn, tag, {p: v for p, v in split.items() if p[:2] in storable})
            return split
    except DBAPIError as exc:
        logger.info("Hourly rollups not stored (%s); computed for this query only", exc.orig)
        with engine.connect() as conn:
            return _computed_hours(conn, hours, tag)


def _store(conn: Connection, hours: dict[Part, Sums]) -> None:
    h = s.trace_hours.c
    keys = [(exp, hour) for exp, hour, _ in hours]
    # an hour stored by a concurrent reader is replaced, feedback and all
    conn.execute(s.trace_hours.delete().where(tuple_(h.experiment_id, h.hour_ms).in_(keys)))
    conn.execute(
        s.trace_hours.insert(),
        [
            {"experiment_id": exp, "hour_ms": hour, **_columns(sums)}
            for (exp, hour, _), sums in hours.items()
        ],
    )
    feedback = [
        {
            "experiment_id": exp,
            "hour_ms": hour,
            "name": name,
            **dict(zip(FEEDBACK_FIELDS, values, strict=True)),
        }
        for (exp, hour, _), sums in hours.items()
        for name, values in sums.feedback.items()
    ]
    if feedback:
        conn.execute(s.feedback_hours.insert(), feedback)


def _store_split(conn: Connection, tag: str, parts: dict[Part, Sums]) -> None:
    if parts:
        conn.execute(
            s.tag_hours.insert(),
            [
                {
                    "experiment_id": exp,
                    "hour_ms": hour,
                    "key": tag,
                    "value": value,
                    **_columns(sums),
                }
                for (exp, hour, value), sums in parts.items()
            ],
        )


def _sums_of(row: Any) -> Sums:
    """The sums a stored row of ``trace_hours`` or ``tag_hours`` holds (see ``_columns``)."""
    return Sums(row.traces, row.errors, row.timed, row.duration_sum, [bytes(row.durations)])


def _columns(sums: Sums) -> dict[str, Any]:
    return {
        "traces": sums.traces,
        "errors": sums.errors,
        "timed": sums.timed,
        "duration_sum": sums.duration_sum,
        "durations": sums.histograms[0] if sums.histograms else b"",
    }


def _computed_hours(
    conn: Connection, hours: Sequence[tuple[int, int]], tag: str | None
) -> dict[Part, Sums]:
    """Every one of ``hours`` computed (with feedback; split by ``tag`` if given), empty ones
    included, as the row (or with a tag, the row for traces without it) that marks them
    stored."""
    by_experiment: dict[int, list[int]] = defaultdict(list)
    for exp, hour in hours:
        by_experiment[exp].append(hour)
    computed: dict[Part, Sums] = {}
    for exp, starts in by_experiment.items():
        starts.sort()
        ranges: list[tuple[int, int]] = []
        for start in starts:  # contiguous hours as one range
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], start + HOUR_MS)
            else:
                ranges.append((start, start + HOUR_MS))
        if tag is None:
            computed.update(hourly_sums.from_traces(conn, exp, ranges, feedback=True))
        else:
            computed.update(hourly_sums.split_from_traces(conn, exp, ranges, tag))
        for start in starts:
            computed.setdefault((exp, start, None), Sums(histograms=[b""]))
    return computed


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that may compute and then store hours without a write in between."""
    if engine.dialect.name == "sqlite":
        with immediate_transaction(engine) as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


def _try_locks(conn: Connection, hours: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The hours whose exclusive advisory lock this transaction got at once (see the module's
    docstring), taken in (experiment, hour) order in one statement."""
    ordered = sorted(hours)
    got = conn.execute(
        text(
            "SELECT e, h FROM unnest(CAST(:es AS integer[]), CAST(:hs AS bigint[])) "
            "WITH ORDINALITY AS u(e, h, n) "
            f"WHERE pg_try_advisory_xact_lock(e, {lock_key_sql('h')}) ORDER BY n"
        ),
        {"es": [e for e, _ in ordered], "hs": [h for _, h in ordered]},
    )
    return [(int(e), int(h)) for e, h in got]


def stored_hours(conn: Connection) -> list[tuple[int, int]]:
    """Every (experiment, hour) stored: for tests and the benchmark."""
    h = s.trace_hours.c
    query = select(h.experiment_id, h.hour_ms).order_by(h.experiment_id, h.hour_ms)
    return [(int(exp), int(hour)) for exp, hour in conn.execute(query)]
