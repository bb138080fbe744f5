"""A scorer registered for monitoring: what it is, what it samples, and where it stands."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class ScorerStatus(str, enum.Enum):
    STOPPED = "STOPPED"
    """Registered, not scoring (a new registration, or after ``stop()``)."""
    STARTED = "STARTED"
    """The monitor scores new traces with it."""


@dataclass
class RegisteredScorer:
    experiment_id: str
    name: str
    version: int
    definition: dict[str, Any]
    """How to rebuild the scorer (:mod:`tracejudge.monitoring.definitions`), judge model
    included; a different definition under the same name is a new version."""
    status: ScorerStatus = ScorerStatus.STOPPED
    sample_rate: float = 0.0
    filter_string: str | None = None
    max_calls_per_hour: int | None = None
    max_cost_per_day: float | None = None
    alert_below: float | None = None
    """Call ``alert_webhook`` when the pass rate over the last hour falls below this."""
    alert_webhook: str | None = None
    watermark: tuple[int, str] | None = None
    """``(timestamp_ms, trace_id)``: every sampled trace up to here has been scored."""
    failures: int = 0
    """Consecutive failed attempts (provider down, bad key); reset by a success."""
    backoff_until_ms: int | None = None
    last_error: str | None = None
    create_time_ms: int = 0
    update_time_ms: int = 0
    versions: list[int] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["watermark"] = list(self.watermark) if self.watermark else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisteredScorer:
        data = dict(data)
        data["status"] = ScorerStatus(data.get("status", "STOPPED"))
        mark = data.get("watermark")
        data["watermark"] = (int(mark[0]), str(mark[1])) if mark else None
        return cls(**data)
