"""Monitoring over the REST API: the registry and the monitor's claims (``/api/v1/monitor/…``),
its figures (``/api/v1/monitor/status``) and their Prometheus lines on ``/metrics``.

Each write route is one call on the server's ``store.monitor``, so a registration made through
the server is the one its database holds, and claims taken through it stay atomic there.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from tracejudge.entities import ScorerStatus
from tracejudge.errors import InvalidArgumentError, TraceJudgeError
from tracejudge.monitoring.status import ScorerStatusReport, monitor_status
from tracejudge.store.base import TraceStore
from tracejudge.store.monitor_sql import ClaimResult

PREFIX = "/api/v1/monitor"
MAX_IDS = 5_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScorerRef(_Body):
    experiment_id: str
    name: str


class RegisterBody(ScorerRef):
    definition: dict[str, Any]
    settings: dict[str, Any] = {}


class UpdateBody(ScorerRef):
    changes: dict[str, Any]


class ListBody(_Body):
    experiment_id: str | None = None


class CandidatesBody(_Body):
    experiment_id: str
    after: tuple[int, str] | None = None
    until_ms: int
    filter_string: str | None = None
    limit: int = 500


class ClaimBody(_Body):
    experiment_id: str
    scorer: str
    version: int
    trace_ids: list[str]
    owner: str
    lease_ms: int


class Result(_Body):
    trace_id: str
    state: str
    calls: int = 0
    cost: float = 0.0
    passed: float | None = None
    error: str | None = None


class FinishBody(_Body):
    experiment_id: str
    scorer: str
    owner: str
    results: list[Result]


class ReleaseBody(_Body):
    experiment_id: str
    scorer: str
    owner: str
    trace_ids: list[str]


class FinishedBody(_Body):
    experiment_id: str
    scorer: str
    trace_ids: list[str]


class WatermarkBody(ScorerRef):
    mark: tuple[int, str]


class SinceBody(_Body):
    experiment_id: str
    scorer: str
    since_ms: int


def _bounded(ids: list[str]) -> list[str]:
    if len(ids) > MAX_IDS:
        raise InvalidArgumentError(f"At most {MAX_IDS:,} trace ids per request.")
    return ids


def add_monitor_routes(app: FastAPI, store: TraceStore) -> None:
    tables = store.monitor  # type: ignore[attr-defined]

    @app.post(f"{PREFIX}/scorers/register", response_model=None)
    def register(body: RegisterBody) -> dict[str, Any]:
        found = tables.register(body.experiment_id, body.name, body.definition, **body.settings)
        return found.to_dict()

    @app.post(f"{PREFIX}/scorers/get", response_model=None)
    def get(body: ScorerRef) -> dict[str, Any]:
        return tables.get(body.experiment_id, body.name).to_dict()

    @app.post(f"{PREFIX}/scorers/list", response_model=None)
    def list_scorers(body: ListBody) -> dict[str, Any]:
        return {"scorers": [r.to_dict() for r in tables.list_scorers(body.experiment_id)]}

    @app.post(f"{PREFIX}/scorers/update", response_model=None)
    def update(body: UpdateBody) -> dict[str, Any]:
        changes = dict(body.changes)
        if "status" in changes:
            try:
                changes["status"] = ScorerStatus(changes["status"])
            except ValueError:
                raise InvalidArgumentError(
                    f"Unknown scorer status {changes['status']!r}."
                ) from None
        return tables.update(body.experiment_id, body.name, **changes).to_dict()

    @app.post(f"{PREFIX}/scorers/delete", response_model=None)
    def delete(body: ScorerRef) -> dict[str, Any]:
        tables.delete(body.experiment_id, body.name)
        return {}

    @app.post(f"{PREFIX}/candidates", response_model=None)
    def candidates(body: CandidatesBody) -> dict[str, Any]:
        found = tables.candidates(
            body.experiment_id,
            body.after,
            body.until_ms,
            body.filter_string,
            min(max(body.limit, 0), MAX_IDS),
        )
        return {
            "candidates": [
                {
                    "trace_id": c.trace_id,
                    "timestamp_ms": c.timestamp_ms,
                    "in_progress": c.in_progress,
                }
                for c in found
            ]
        }

    @app.post(f"{PREFIX}/claim", response_model=None)
    def claim(body: ClaimBody) -> dict[str, Any]:
        taken = tables.claim(
            body.experiment_id,
            body.scorer,
            body.version,
            _bounded(body.trace_ids),
            body.owner,
            body.lease_ms,
        )
        return {"taken": taken}

    @app.post(f"{PREFIX}/finish", response_model=None)
    def finish(body: FinishBody) -> dict[str, Any]:
        results = [ClaimResult(**r.model_dump()) for r in body.results]
        return {"finished": tables.finish(body.experiment_id, body.scorer, body.owner, results)}

    @app.post(f"{PREFIX}/release", response_model=None)
    def release(body: ReleaseBody) -> dict[str, Any]:
        tables.release(body.experiment_id, body.scorer, body.owner, _bounded(body.trace_ids))
        return {}

    @app.post(f"{PREFIX}/finished", response_model=None)
    def finished(body: FinishedBody) -> dict[str, Any]:
        done = tables.finished(body.experiment_id, body.scorer, _bounded(body.trace_ids))
        return {"finished": sorted(done)}

    @app.post(f"{PREFIX}/watermark", response_model=None)
    def watermark(body: WatermarkBody) -> dict[str, Any]:
        tables.advance_watermark(body.experiment_id, body.name, body.mark)
        return {}

    @app.post(f"{PREFIX}/usage", response_model=None)
    def usage(body: SinceBody) -> dict[str, Any]:
        return tables.usage(body.experiment_id, body.scorer, body.since_ms)

    @app.post(f"{PREFIX}/pass-rate", response_model=None)
    def pass_rate(body: SinceBody) -> dict[str, Any]:
        hours = tables.pass_rate_by_hour(body.experiment_id, body.scorer, body.since_ms)
        return {"hours": [list(h) for h in hours]}

    @app.get(f"{PREFIX}/status", response_model=None)
    def status(experiment_id: str | None = None) -> dict[str, Any]:
        """Per scorer: state, the last hour and day, backlog, spend and pass rate per hour."""
        return {"scorers": [r.to_dict() for r in monitor_status(store, experiment_id)]}


def render_monitor_metrics(reports: list[ScorerStatusReport]) -> list[str]:
    """The monitor's figures as Prometheus gauges, one series per scorer."""
    if not reports:
        return []
    series: dict[str, tuple[str, list[str]]] = {
        "tracejudge_monitor_scorer_state": (
            "1 for the scorer's state: STARTED, STOPPED, PAUSED (over budget), BACKING_OFF or "
            "UNHEALTHY.",
            [],
        ),
        "tracejudge_monitor_sampled_last_hour": ("Traces the scorer took in the last hour.", []),
        "tracejudge_monitor_scored_last_hour": ("Traces scored in the last hour.", []),
        "tracejudge_monitor_failed_last_hour": ("Traces whose scoring failed, last hour.", []),
        "tracejudge_monitor_calls_last_hour": ("Model calls in the last hour.", []),
        "tracejudge_monitor_cost_last_day": ("Model spend in the last 24 hours.", []),
        "tracejudge_monitor_pass_rate_last_hour": (
            "Share of pass verdicts in the last hour (absent without verdicts).",
            [],
        ),
        "tracejudge_monitor_backlog": ("Sampled traces waiting to be scored.", []),
        "tracejudge_monitor_lag_seconds": (
            "Age of the oldest sampled trace waiting to be scored (0 when none waits).",
            [],
        ),
    }
    for r in reports:
        labels = f'experiment_id="{r.experiment_id}",scorer="{_escape(r.name)}"'
        series["tracejudge_monitor_scorer_state"][1].append(
            f'tracejudge_monitor_scorer_state{{{labels},state="{r.state}"}} 1'
        )
        for metric, value in (
            ("sampled_last_hour", r.last_hour["sampled"]),
            ("scored_last_hour", r.last_hour["scored"]),
            ("failed_last_hour", r.last_hour["failed"]),
            ("calls_last_hour", r.last_hour["calls"]),
            ("cost_last_day", r.last_day["cost"]),
            ("pass_rate_last_hour", r.last_hour["pass_rate"]),
            ("backlog", r.backlog),
            ("lag_seconds", r.lag_s),
        ):
            if value is not None:
                series[f"tracejudge_monitor_{metric}"][1].append(
                    f"tracejudge_monitor_{metric}{{{labels}}} {value:g}"
                )
    lines: list[str] = []
    for name, (help_text, rows) in series.items():
        if rows:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *rows]
    return lines


def monitor_metrics(store: TraceStore) -> list[str]:
    """``/metrics``' monitoring lines; none when the store has no monitoring tables."""
    if getattr(store, "monitor", None) is None:
        return []
    try:
        return render_monitor_metrics(monitor_status(store))
    except TraceJudgeError as exc:  # the request counters are still worth scraping
        return [f"# monitor figures unavailable: {' '.join(str(exc).split())[:300]}"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
