"""Evaluation datasets on a tracking server: :class:`SqlDatasetStore`'s methods over HTTP,
one call each, so ``tracejudge.datasets`` works unchanged with ``set_tracking_uri("http://…")``.

A merge retried after a lost answer merges the same records again, which leaves them as they
were (the same inputs update the same record with the same values)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tracejudge.entities.dataset import Dataset, DatasetRecord

if TYPE_CHECKING:
    from tracejudge.store.http_store import HttpTraceStore

DATASETS = "/datasets"


class HttpDatasetStore:
    """``store.datasets`` of an :class:`~tracejudge.store.http_store.HttpTraceStore`."""

    def __init__(self, store: HttpTraceStore) -> None:
        self._store = store

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._store._call("POST", DATASETS + path, body)

    def create(
        self, name: str, experiment_ids: Sequence[str] = (), tags: dict[str, str] | None = None
    ) -> Dataset:
        body = {"name": name, "experiment_ids": list(experiment_ids), "tags": tags or {}}
        return Dataset.from_dict(self._post("/create", body))

    def get(self, dataset_id: str | None = None, name: str | None = None) -> Dataset:
        return Dataset.from_dict(self._post("/get", {"dataset_id": dataset_id, "name": name}))

    def search(
        self, experiment_ids: Sequence[str] | None = None, max_results: int = 1000
    ) -> list[Dataset]:
        body = {"experiment_ids": list(experiment_ids or []), "max_results": max_results}
        return [Dataset.from_dict(d) for d in self._post("/search", body)["datasets"]]

    def set_tags(self, dataset_id: str, tags: dict[str, str]) -> Dataset:
        return Dataset.from_dict(self._post("/set-tags", {"dataset_id": dataset_id, "tags": tags}))

    def delete_tag(self, dataset_id: str, key: str) -> Dataset:
        body = {"dataset_id": dataset_id, "key": key}
        return Dataset.from_dict(self._post("/delete-tag", body))

    def delete(self, dataset_id: str) -> None:
        self._post("/delete", {"dataset_id": dataset_id})

    def merge_records(self, dataset_id: str, records: Iterable[DatasetRecord]) -> dict[str, int]:
        body = {"dataset_id": dataset_id, "records": [r.to_dict() for r in records]}
        return dict(self._post("/merge-records", body))

    def records(self, dataset_id: str) -> list[DatasetRecord]:
        reply = self._post("/records", {"dataset_id": dataset_id})
        return [DatasetRecord.from_dict(r) for r in reply["records"]]


__all__ = ["HttpDatasetStore"]
