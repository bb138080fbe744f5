"""What each registered scorer has been doing: the figures of ``tracejudge monitor status``,
of the server's ``/metrics`` and of its monitoring API."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tracejudge.entities import RegisteredScorer, ScorerStatus
from tracejudge.scorers.registration import is_sampled, monitor_tables
from tracejudge.store import TraceStore

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
BACKLOG_CAP = 10_000
"""Backlog counts stop here (the figure then reads "10000+")."""


@dataclass
class ScorerStatusReport:
    experiment_id: str
    name: str
    version: int
    state: str
    """STARTED, STOPPED, PAUSED (over budget), BACKING_OFF or UNHEALTHY."""
    sample_rate: float
    filter_string: str | None
    last_hour: dict[str, Any]
    last_day: dict[str, Any]
    backlog: int
    backlog_capped: bool
    pass_rate_by_hour: list[tuple[int, float, int]] = field(default_factory=list)
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scorer_state(
    info: RegisteredScorer, now_ms: int, budget_pause: str | None, unhealthy_after: int = 3
) -> tuple[str, str | None]:
    if info.status != ScorerStatus.STARTED:
        return "STOPPED", None
    if info.failures >= unhealthy_after:
        return "UNHEALTHY", info.last_error
    if info.backoff_until_ms is not None and info.backoff_until_ms > now_ms:
        return "BACKING_OFF", info.last_error
    if budget_pause is not None:
        return "PAUSED", budget_pause
    return "STARTED", None


def backlog(store: TraceStore, info: RegisteredScorer, until_ms: int) -> tuple[int, bool]:
    """Sampled traces past the watermark, waiting to be scored (counted up to BACKLOG_CAP)."""
    found = monitor_tables(store).candidates(
        info.experiment_id, info.watermark, until_ms, info.filter_string, BACKLOG_CAP
    )
    waiting = sum(1 for c in found if is_sampled(c.trace_id, info.name, info.sample_rate))
    return waiting, len(found) >= BACKLOG_CAP


def monitor_status(store: TraceStore, experiment_id: str | None = None) -> list[ScorerStatusReport]:
    from tracejudge.monitoring.monitor import Monitor

    tables = monitor_tables(store)
    now = int(time.time() * 1000)
    monitor = Monitor(store)
    reports = []
    for info in tables.list_scorers(experiment_id):
        state, detail = scorer_state(info, now, monitor.budget_pause(info, now))
        waiting, capped = backlog(store, info, now) if info.sample_rate > 0 else (0, False)
        reports.append(
            ScorerStatusReport(
                experiment_id=info.experiment_id,
                name=info.name,
                version=info.version,
                state=state,
                sample_rate=info.sample_rate,
                filter_string=info.filter_string,
                last_hour=tables.usage(info.experiment_id, info.name, now - HOUR_MS),
                last_day=tables.usage(info.experiment_id, info.name, now - DAY_MS),
                backlog=waiting,
                backlog_capped=capped,
                pass_rate_by_hour=tables.pass_rate_by_hour(
                    info.experiment_id, info.name, now - DAY_MS
                ),
                detail=detail,
            )
        )
    return reports
