"""``handle.backfill(start, end)``: score the past traces a registered scorer's sampling picks.

It is the monitor's own pass, over a time range instead of past the watermark, with the same
claims: a trace the monitor (or an earlier backfill) scored is not scored again, and a
backfill running beside a monitor shares the work with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tracejudge.errors import InvalidArgumentError
from tracejudge.monitoring.monitor import Monitor, MonitorOptions
from tracejudge.scorers.registration import RegisteredScorerHandle


def _ms(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    raise InvalidArgumentError(f"start and end are datetimes or epoch milliseconds, not {value!r}.")


def backfill(handle: RegisteredScorerHandle, start: Any = None, end: Any = None) -> int:
    """Score the traces that started in [start, end] (default: everything up to now)."""
    info = handle.info
    if info.sample_rate == 0:  # registered, never started: backfill everything it matches
        info.sample_rate = 1.0
    start_ms, end_ms = _ms(start, 0), _ms(end, 2**62)
    if start_ms > end_ms:
        raise InvalidArgumentError("backfill: start is after end.")
    monitor = Monitor(handle._store, [handle.experiment_id], MonitorOptions(settle_s=0))
    tables = monitor.tables
    scorer = monitor._scorer(info)
    scored = 0
    after: tuple[int, str] | None = (start_ms - 1, "\uffff")
    while True:
        candidates = tables.candidates(
            info.experiment_id, after, end_ms, info.filter_string, monitor.options.batch
        )
        if not candidates:
            return scored
        scored += monitor.score_candidates(info, scorer, candidates).scored
        after = (candidates[-1].timestamp_ms, candidates[-1].trace_id)
