"""Evaluation datasets as MLflow 3's ``mlflow.genai.datasets`` has them: ``create_dataset``,
``get_dataset``, ``search_datasets``, ``delete_dataset``, tags, and an
:class:`EvaluationDataset` whose ``merge_records`` takes dicts, a DataFrame or traces and
which ``evaluate(data=…)`` scores.

A record from a trace takes the trace's inputs and the expectations people logged on it
(``log_expectation``), so the usual way to build a regression set is: search the traces that
went wrong, add the expected answer to each, merge them into a dataset, and evaluate every new
version of the app on it with ``predict_fn``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tracejudge.entities import Trace
from tracejudge.entities.dataset import Dataset, DatasetRecord, RecordSource
from tracejudge.errors import InvalidArgumentError, TraceJudgeError
from tracejudge.evaluation.expectations import logged_expectations
from tracejudge.store import get_store
from tracejudge.store.base import TraceStore
from tracejudge.tracing.experiment import active_experiment_id

_RECORD_KEYS = {
    "inputs",
    "expectations",
    "tags",
    "source_type",
    "source_id",
    "trace_id",
    "trace",
    "dataset_record_id",  # a record of another dataset: its id there is not kept
}
MERGE_PART = 1_000
"""Records per call to the store: a merge of 100k records is 100 transactions, each small."""


def _tables(store: TraceStore) -> Any:
    tables = getattr(store, "datasets", None)
    if tables is None:
        raise TraceJudgeError(f"The tracking store {store!r} does not keep evaluation datasets.")
    return tables


def _record_from_trace(trace: Trace, index: int) -> DatasetRecord:
    inputs = trace.data.inputs
    if not isinstance(inputs, dict) or not inputs:
        inputs = {"request": inputs}
    if inputs == {"request": None}:
        raise InvalidArgumentError(f"Record {index}: trace {trace.info.trace_id} has no inputs.")
    return DatasetRecord(
        inputs=inputs,
        expectations=logged_expectations(trace),
        source_type=RecordSource.TRACE,
        source_id=trace.info.trace_id,
    )


def _record_from_mapping(data: Mapping[str, Any], index: int) -> DatasetRecord:
    unknown = set(data) - _RECORD_KEYS
    if unknown:
        raise InvalidArgumentError(
            f"Record {index} has unknown key(s) {sorted(unknown)}; a record takes "
            f"{sorted(_RECORD_KEYS)}."
        )
    if isinstance(data.get("trace"), Trace):
        record = _record_from_trace(data["trace"], index)
        record.expectations.update(data.get("expectations") or {})
        return record
    inputs, expectations = data.get("inputs"), data.get("expectations") or {}
    if not isinstance(inputs, Mapping) or not inputs:
        raise InvalidArgumentError(f"Record {index}: 'inputs' must be a non-empty dict.")
    if not isinstance(expectations, Mapping):
        raise InvalidArgumentError(f"Record {index}: 'expectations' must be a dict.")
    tags = data.get("tags") or {}
    if not isinstance(tags, Mapping):
        raise InvalidArgumentError(f"Record {index}: 'tags' must be a dict.")
    source = data.get("source_type")
    trace_id = data.get("trace_id")
    try:
        kind = RecordSource(source) if source else RecordSource.CODE
    except ValueError:
        choices = ", ".join(s.value for s in RecordSource)
        raise InvalidArgumentError(f"Record {index}: source_type is one of {choices}.") from None
    if trace_id and not source:
        kind = RecordSource.TRACE
    return DatasetRecord(
        inputs=dict(inputs),
        expectations=dict(expectations),
        tags={str(k): str(v) for k, v in tags.items()},
        source_type=kind,
        source_id=data.get("source_id") or trace_id,
    )


def records_from(data: Any) -> list[DatasetRecord]:
    """Records from a list of dicts or Traces, or a DataFrame (the one ``search_traces``
    returns, with its ``trace`` column, included)."""
    if isinstance(data, pd.DataFrame):
        items: Sequence[Any] = [
            {k: v for k, v in row.items() if k in _RECORD_KEYS and not is_missing(v)}
            for row in data.to_dict(orient="records")
        ]
    elif isinstance(data, (Trace, Mapping)):
        items = [data]
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        items = data
    else:
        raise InvalidArgumentError(
            "merge_records takes a list of dicts or Traces, or a pandas DataFrame, "
            f"not {type(data).__name__}."
        )
    out = []
    for index, item in enumerate(items):
        if isinstance(item, Trace):
            out.append(_record_from_trace(item, index))
        elif isinstance(item, Mapping):
            out.append(_record_from_mapping(item, index))
        else:
            raise InvalidArgumentError(
                f"Record {index} is a {type(item).__name__}, not a dict or a Trace."
            )
    return out


def is_missing(value: Any) -> bool:
    """None or NaN: what pandas puts in a cell a record does not fill."""
    return value is None or (isinstance(value, float) and value != value)


class EvaluationDataset:
    """A stored dataset. Its records are read when first asked for and after each merge."""

    def __init__(self, info: Dataset, store: TraceStore) -> None:
        self._info = info
        self._store = store
        self._records: list[DatasetRecord] | None = None

    @property
    def dataset_id(self) -> str:
        return self._info.dataset_id

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def digest(self) -> str:
        return self._info.digest

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._info.tags)

    @property
    def experiment_ids(self) -> list[str]:
        return list(self._info.experiment_ids)

    @property
    def create_time(self) -> int:
        return self._info.create_time_ms

    @property
    def last_update_time(self) -> int:
        return self._info.update_time_ms

    @property
    def records(self) -> list[DatasetRecord]:
        if self._records is None:
            self._records = _tables(self._store).records(self.dataset_id)
        return list(self._records)

    def __len__(self) -> int:
        """The record count the store gave with the dataset (no records are read for it)."""
        return self._info.record_count

    def __repr__(self) -> str:
        return f"EvaluationDataset(name={self.name!r}, dataset_id={self.dataset_id!r})"

    def merge_records(self, records: Any) -> EvaluationDataset:
        """Add records; one whose inputs are already in the dataset has its expectations and
        tags merged into that record (the new values win). Returns the dataset, refreshed."""
        parsed = records_from(records)
        tables = _tables(self._store)
        for start in range(0, len(parsed), MERGE_PART):
            tables.merge_records(self.dataset_id, parsed[start : start + MERGE_PART])
        self._refresh()
        return self

    def set_tags(self, tags: dict[str, str]) -> EvaluationDataset:
        self._info = _tables(self._store).set_tags(self.dataset_id, tags)
        return self

    def delete_tag(self, key: str) -> EvaluationDataset:
        self._info = _tables(self._store).delete_tag(self.dataset_id, key)
        return self

    def _refresh(self) -> None:
        self._info = _tables(self._store).get(self.dataset_id)
        self._records = None

    def to_df(self) -> pd.DataFrame:
        """One row per record: inputs, expectations, tags, source and times."""
        columns = [
            "record_id",
            "inputs",
            "expectations",
            "tags",
            "source_type",
            "source_id",
            "create_time",
            "last_update_time",
        ]
        return pd.DataFrame(
            [
                [
                    r.record_id,
                    r.inputs,
                    r.expectations,
                    r.tags,
                    r.source_type.value,
                    r.source_id,
                    r.create_time_ms,
                    r.update_time_ms,
                ]
                for r in self.records
            ],
            columns=columns,
        )

    def to_evaluation_rows(self) -> list[dict[str, Any]]:
        """The rows ``evaluate()`` scores: each record's inputs, expectations and id (the app's
        outputs come from ``predict_fn``; the id goes on the row's trace)."""
        return [
            {"inputs": r.inputs, "expectations": r.expectations, "dataset_record_id": r.record_id}
            for r in self.records
        ]

    def reference(self) -> dict[str, str]:
        """What a run that scored this dataset records of it (``EvaluationRun.dataset``)."""
        return {"dataset_id": self.dataset_id, "name": self.name, "digest": self.digest}


def _experiment_ids(store: TraceStore, experiment_id: str | Sequence[str] | None) -> list[str]:
    if experiment_id is None:
        return [active_experiment_id(store)]
    if isinstance(experiment_id, str):
        return [experiment_id]
    return [str(e) for e in experiment_id]


def create_dataset(
    name: str,
    experiment_id: str | Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
) -> EvaluationDataset:
    """A new, empty dataset linked to the experiments (default: the active one). Names are
    unique: a name already taken is an error (``get_dataset(name=…)`` finds it)."""
    store = get_store()
    info = _tables(store).create(name, _experiment_ids(store, experiment_id), tags)
    return EvaluationDataset(info, store)


def get_dataset(dataset_id: str | None = None, name: str | None = None) -> EvaluationDataset:
    """The dataset with this id or this name (``DatasetNotFoundError`` if none)."""
    store = get_store()
    return EvaluationDataset(_tables(store).get(dataset_id, name), store)


def search_datasets(
    experiment_ids: str | Sequence[str] | None = None, max_results: int = 1000
) -> list[EvaluationDataset]:
    """Datasets newest first; with ``experiment_ids``, those linked to any of them."""
    store = get_store()
    wanted = [experiment_ids] if isinstance(experiment_ids, str) else experiment_ids
    return [EvaluationDataset(d, store) for d in _tables(store).search(wanted, max_results)]


def delete_dataset(dataset_id: str) -> None:
    """Delete the dataset and its records (the traces they came from stay)."""
    _tables(get_store()).delete(dataset_id)


def set_dataset_tags(dataset_id: str, tags: dict[str, str]) -> EvaluationDataset:
    store = get_store()
    return EvaluationDataset(_tables(store).set_tags(dataset_id, tags), store)


def delete_dataset_tag(dataset_id: str, key: str) -> EvaluationDataset:
    store = get_store()
    return EvaluationDataset(_tables(store).delete_tag(dataset_id, key), store)


__all__ = [
    "EvaluationDataset",
    "create_dataset",
    "delete_dataset",
    "delete_dataset_tag",
    "get_dataset",
    "records_from",
    "search_datasets",
    "set_dataset_tags",
]
