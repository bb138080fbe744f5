"""Evaluation datasets: named, stored sets of inputs with their expectations (ground truth).

A team gathers the cases its app must get right — from production traces, from people, from
code — and evaluates every new version against the same set. A record is identified within its
dataset by its inputs: merging a record whose inputs are already there merges its
expectations and tags into that record instead of adding a second one (as MLflow 3's
``merge_records`` does).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from tracejudge.entities._json import dumps, to_jsonable


class RecordSource(str, enum.Enum):
    CODE = "CODE"
    """Written by a program (a list of dicts, a DataFrame)."""
    TRACE = "TRACE"
    """Taken from a trace: its inputs and the expectations logged on it (``source_id``)."""
    HUMAN = "HUMAN"
    """Entered by a person."""
    DOCUMENT = "DOCUMENT"
    """Made from a document (``source_id`` names it)."""


def inputs_digest(inputs: Any) -> str:
    """The identity of a record's inputs: a SHA-256 of their canonical JSON (keys sorted), so
    ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` are the same record."""
    canonical = dumps(_sorted(to_jsonable(inputs)))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


@dataclass
class DatasetRecord:
    inputs: dict[str, Any]
    expectations: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    source_type: RecordSource = RecordSource.CODE
    source_id: str | None = None
    """The trace id of a ``TRACE`` record, a document's id or URI, or a person's name."""
    record_id: str = ""
    """Given by the store when the record is first merged."""
    create_time_ms: int = 0
    update_time_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["source_type"] = self.source_type.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetRecord:
        return cls(
            inputs=data["inputs"],
            expectations=dict(data.get("expectations") or {}),
            tags=dict(data.get("tags") or {}),
            source_type=RecordSource(data.get("source_type") or RecordSource.CODE.value),
            source_id=data.get("source_id"),
            record_id=data.get("record_id") or "",
            create_time_ms=int(data.get("create_time_ms") or 0),
            update_time_ms=int(data.get("update_time_ms") or 0),
        )


@dataclass
class Dataset:
    """What is known of a dataset without reading its records."""

    dataset_id: str
    name: str
    experiment_ids: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    """A hash of every record's inputs and expectations: two evaluations that name the same
    digest ran on the same data."""
    record_count: int = 0
    create_time_ms: int = 0
    update_time_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dataset:
        return cls(
            dataset_id=data["dataset_id"],
            name=data["name"],
            experiment_ids=[str(e) for e in data.get("experiment_ids") or []],
            tags=dict(data.get("tags") or {}),
            digest=data.get("digest") or "",
            record_count=int(data.get("record_count") or 0),
            create_time_ms=int(data.get("create_time_ms") or 0),
            update_time_ms=int(data.get("update_time_ms") or 0),
        )


__all__ = ["Dataset", "DatasetRecord", "RecordSource", "inputs_digest"]
