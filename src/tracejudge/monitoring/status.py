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
    lag_s: float = 0.0
    """Age of the oldest sampled trace waiting to be scored (0 when none waits)."""
    pass_rate_by_hour: list[tuple[int, float, int]] = field(default_factory=list)
    alert_below: float | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScorerStatusReport:
        data = dict(data)
        data["pass_rate_by_hour"] = [
            (int(h), float(r), int(n)) for h, r, n in data.get("pass_rate_by_hour", [])
        ]
        return cls(**data)


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


def backlog(store: TraceStore, info: RegisteredScorer, until_ms: int) -> tuple[int, bool, float]:
    """Sampled traces past the watermark waiting to be scored (counted up to BACKLOG_CAP),
    whether the count stopped at the cap, and the age in seconds of the oldest one."""
    found = monitor_tables(store).candidates(
        info.experiment_id, info.watermark, until_ms, info.filter_string, BACKLOG_CAP
    )
    waiting = [c for c in found if is_sampled(c.trace_id, info.name, info.sample_rate)]
    lag_s = max(0.0, (until_ms - waiting[0].timestamp_ms) / 1000) if waiting else 0.0
    return len(waiting), len(found) >= BACKLOG_CAP, lag_s


def monitor_status(store: TraceStore, experiment_id: str | None = None) -> list[ScorerStatusReport]:
    """Per registered scorer (of one experiment, or all): its state, what it did in the last
    hour and day, its backlog and lag, and its pass rate per hour. On a tracking server the
    server computes them (one request)."""
    from tracejudge.monitoring.monitor import over_budget

    tables = monitor_tables(store)
    remote = getattr(tables, "status", None)
    if remote is not None:
        return [ScorerStatusReport.from_dict(r) for r in remote(experiment_id)]
    now = int(time.time() * 1000)
    reports = []
    for info in tables.list_scorers(experiment_id):
        last_hour = tables.usage(info.experiment_id, info.name, now - HOUR_MS)
        last_day = tables.usage(info.experiment_id, info.name, now - DAY_MS)
        state, detail = scorer_state(info, now, over_budget(info, last_hour, last_day))
        waiting, capped, lag_s = (
            backlog(store, info, now) if info.sample_rate > 0 else (0, False, 0.0)
        )
        reports.append(
            ScorerStatusReport(
                experiment_id=info.experiment_id,
                name=info.name,
                version=info.version,
                state=state,
                sample_rate=info.sample_rate,
                filter_string=info.filter_string,
                last_hour=last_hour,
                last_day=last_day,
                backlog=waiting,
                backlog_capped=capped,
                lag_s=lag_s,
                pass_rate_by_hour=tables.pass_rate_by_hour(
                    info.experiment_id, info.name, now - DAY_MS
                ),
                detail=detail,
                alert_below=info.alert_below,
            )
        )
    return reports
