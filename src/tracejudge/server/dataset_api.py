"""Evaluation datasets over the REST API (``/api/v1/datasets/…``): each route is one call on
the server's ``store.datasets``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from tracejudge.entities.dataset import DatasetRecord
from tracejudge.errors import InvalidArgumentError
from tracejudge.store.base import TraceStore

PREFIX = "/api/v1/datasets"
MAX_RECORDS = 10_000
"""Records per merge request (the client sends larger merges in parts)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBody(_Body):
    name: str
    experiment_ids: list[str] = []
    tags: dict[str, str] = {}


class GetBody(_Body):
    dataset_id: str | None = None
    name: str | None = None


class SearchBody(_Body):
    experiment_ids: list[str] = []
    max_results: int = 1000


class DatasetRef(_Body):
    dataset_id: str


class TagsBody(DatasetRef):
    tags: dict[str, str]


class TagKeyBody(DatasetRef):
    key: str


class MergeBody(DatasetRef):
    records: list[dict[str, Any]]


def _record(data: dict[str, Any]) -> DatasetRecord:
    try:
        return DatasetRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"Malformed dataset record: {exc!r}") from None


def add_dataset_routes(app: FastAPI, store: TraceStore) -> None:
    tables = store.datasets  # type: ignore[attr-defined]

    @app.post(f"{PREFIX}/create", response_model=None)
    def create(body: CreateBody) -> dict[str, Any]:
        return tables.create(body.name, body.experiment_ids, body.tags).to_dict()

    @app.post(f"{PREFIX}/get", response_model=None)
    def get(body: GetBody) -> dict[str, Any]:
        return tables.get(body.dataset_id, body.name).to_dict()

    @app.post(f"{PREFIX}/search", response_model=None)
    def search(body: SearchBody) -> dict[str, Any]:
        found = tables.search(body.experiment_ids or None, max(body.max_results, 0))
        return {"datasets": [d.to_dict() for d in found]}

    @app.post(f"{PREFIX}/set-tags", response_model=None)
    def set_tags(body: TagsBody) -> dict[str, Any]:
        return tables.set_tags(body.dataset_id, body.tags).to_dict()

    @app.post(f"{PREFIX}/delete-tag", response_model=None)
    def delete_tag(body: TagKeyBody) -> dict[str, Any]:
        return tables.delete_tag(body.dataset_id, body.key).to_dict()

    @app.post(f"{PREFIX}/delete", response_model=None)
    def delete(body: DatasetRef) -> dict[str, Any]:
        tables.delete(body.dataset_id)
        return {}

    @app.post(f"{PREFIX}/merge-records", response_model=None)
    def merge_records(body: MergeBody) -> dict[str, Any]:
        if len(body.records) > MAX_RECORDS:
            raise InvalidArgumentError(f"At most {MAX_RECORDS:,} records per merge request.")
        return tables.merge_records(body.dataset_id, [_record(r) for r in body.records])

    @app.post(f"{PREFIX}/records", response_model=None)
    def records(body: DatasetRef) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in tables.records(body.dataset_id)]}


__all__ = ["add_dataset_routes"]
