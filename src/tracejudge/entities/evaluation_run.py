"""An evaluation run: one pass of scorers over a set of traces, with its metrics and cost."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities._fields import optional_int


class RunStatus(str, enum.Enum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex


@dataclass
class EvaluationRun:
    run_id: str
    experiment_id: str
    name: str
    status: RunStatus = RunStatus.RUNNING
    start_time: int = 0
    """Milliseconds since the epoch."""
    end_time: int | None = None
    scorers: list[dict[str, Any]] = field(default_factory=list)
    """What each scorer was and how it was configured (name, class, model, options)."""
    judge_models: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    """Model calls, cached calls, tokens, cost in USD."""
    metrics: dict[str, float] = field(default_factory=dict)
    row_count: int = 0
    failure: str | None = None
    """Why the run FAILED or was INTERRUPTED (the error that stopped it); None otherwise."""
    plan: dict[str, Any] | None = None
    """For a run scored in batches: its trace query (``query``) and its scorers as data
    (``scorers``), so ``evaluate(run_id=...)`` can resume it without being told them again."""
    dataset: dict[str, str] | None = None
    """The evaluation dataset the run scored: ``dataset_id``, ``name`` and the ``digest`` of its
    records at the time (two runs with one digest saw the same data)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "name": self.name,
            "status": self.status.value,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "scorers": list(self.scorers),
            "judge_models": list(self.judge_models),
            "usage": dict(self.usage),
            "metrics": dict(self.metrics),
            "row_count": self.row_count,
            "failure": self.failure,
            "plan": self.plan,
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationRun:
        return cls(
            run_id=data["run_id"],
            experiment_id=str(data["experiment_id"]),
            name=data["name"],
            status=RunStatus(data.get("status") or "RUNNING"),
            start_time=int(data.get("start_time") or 0),
            end_time=optional_int(data, "end_time"),
            scorers=_scorers(data.get("scorers")),
            judge_models=list(data.get("judge_models") or []),
            usage=dict(data.get("usage") or {}),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            row_count=int(data.get("row_count") or 0),
            failure=data.get("failure"),
            plan=data.get("plan"),
            dataset=data.get("dataset"),
        )


def _scorers(value: Any) -> list[dict[str, Any]]:
    """A run's scorers: a list of objects, each with its ``name`` (pages list them by it)."""
    scorers = list(value or [])
    for item in scorers:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TypeError(f"each of a run's scorers must be an object with a name, not {item!r}")
    return scorers
