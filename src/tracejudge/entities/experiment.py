"""An experiment: the folder that groups the traces of one application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    creation_time: int = 0
    """Milliseconds since the epoch."""
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "creation_time": self.creation_time,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(
            experiment_id=str(data["experiment_id"]),
            name=data["name"],
            creation_time=int(data.get("creation_time") or 0),
            tags=dict(data.get("tags") or {}),
        )
