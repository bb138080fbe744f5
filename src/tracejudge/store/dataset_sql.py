"""Evaluation datasets in the SQL store (``store.datasets``): create, find, tag, delete, and
merge records by their inputs.

A merge is one transaction: the dataset's row is locked (PostgreSQL; SQLite writers take turns
anyway), so two merges into one record do not drop each other's expectations; the records
already there with the same inputs are read, their expectations and tags merged with the new
ones, and every row is written with one insert-or-update statement keyed by (dataset, inputs
digest). The dataset's digest is the sum, modulo 2**256, of a SHA-256 per record over its inputs
and expectations: order-free, and updated by what a merge changes instead of rereading every
record.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tracejudge.entities._json import dumps, loads
from tracejudge.entities.dataset import Dataset, DatasetRecord, inputs_digest
from tracejudge.entities.ids import time_ordered_hex, time_ordered_int
from tracejudge.errors import DatasetNotFoundError, InvalidArgumentError
from tracejudge.store import sanitize
from tracejudge.store import schema as s
from tracejudge.store.db_errors import wrap_db_errors

_CHUNK = 500
"""Digests per ``IN (…)`` when reading the records a merge updates."""
_MODULUS = 2**256
EMPTY_DIGEST = "0" * 64
"""The digest of a dataset without records."""


def _record_hash(key: str, expectations_json: str) -> int:
    text = key + "\n" + expectations_json
    return int(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), 16)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and k for k in tags):
        raise InvalidArgumentError("Dataset tags must be a dict with non-empty string keys.")
    return {k: str(v) for k, v in tags.items()}


class SqlDatasetStore:
    """``store.datasets`` of a :class:`~tracejudge.store.sql_store.SqlTraceStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # ------------------------------------------------------------ datasets

    @wrap_db_errors
    def create(
        self, name: str, experiment_ids: Sequence[str] = (), tags: dict[str, str] | None = None
    ) -> Dataset:
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise InvalidArgumentError(
                "A dataset name is a non-empty string of at most 256 characters."
            )
        checked = _check_tags(tags)
        now = _now_ms()
        dataset = Dataset(
            dataset_id=f"d-{time_ordered_hex()}",
            name=name,
            experiment_ids=[str(e) for e in experiment_ids],
            tags=checked,
            digest=EMPTY_DIGEST,
            create_time_ms=now,
            update_time_ms=now,
        )
        with self.engine.begin() as conn:
            taken = conn.execute(select(s.datasets.c.dataset_id).where(s.datasets.c.name == name))
            if taken.first() is not None:
                raise InvalidArgumentError(f"A dataset named {name!r} already exists.")
            self._check_experiments(conn, dataset.experiment_ids)
            conn.execute(
                s.datasets.insert().values(
                    dataset_id=dataset.dataset_id,
                    name=name,
                    experiment_ids=dumps(dataset.experiment_ids),
                    tags=dumps(checked),
                    digest=dataset.digest,
                    create_time_ms=now,
                    update_time_ms=now,
                )
            )
        return dataset

    @staticmethod
    def _check_experiments(conn: Connection, experiment_ids: Sequence[str]) -> None:
        keys = []
        for eid in experiment_ids:
            if not str(eid).isdigit():
                raise InvalidArgumentError(f"No experiment with id {eid!r}.")
            keys.append(int(eid))
        column = s.experiments.c.experiment_id
        found = {r[0] for r in conn.execute(select(column).where(column.in_(keys)))}
        missing = [str(k) for k in keys if k not in found]
        if missing:
            raise InvalidArgumentError(f"No experiment with id {', '.join(missing)}.")

    @wrap_db_errors
    def get(self, dataset_id: str | None = None, name: str | None = None) -> Dataset:
        if (dataset_id is None) == (name is None):
            raise InvalidArgumentError("Give a dataset's id or its name, not both.")
        d = s.datasets.c
        condition = d.dataset_id == dataset_id if dataset_id is not None else d.name == name
        with self.engine.connect() as conn:
            found = self._datasets(conn, condition)
        if not found:
            what = f"id {dataset_id!r}" if dataset_id is not None else f"name {name!r}"
            raise DatasetNotFoundError(f"No dataset with {what}.")
        return found[0]

    @wrap_db_errors
    def search(
        self, experiment_ids: Sequence[str] | None = None, max_results: int = 1000
    ) -> list[Dataset]:
        """Datasets newest first; with ``experiment_ids``, those linked to any of them."""
        with self.engine.connect() as conn:
            found = self._datasets(conn, None)
        if experiment_ids:
            wanted = {str(e) for e in experiment_ids}
            found = [d for d in found if wanted & set(d.experiment_ids)]
        return found[:max_results]

    def _datasets(self, conn: Connection, condition: Any) -> list[Dataset]:
        d, r = s.datasets.c, s.dataset_records.c
        # counted per dataset read, from the (dataset, inputs digest) index: a dataset looked
        # up by id does not count every other dataset's records
        count = (
            select(func.count())
            .where(r.dataset_id == d.dataset_id)
            .correlate(s.datasets)
            .scalar_subquery()
        )
        query = select(s.datasets, count.label("record_count")).order_by(
            d.create_time_ms.desc(), d.dataset_id.desc()
        )
        if condition is not None:
            query = query.where(condition)
        return [
            Dataset(
                dataset_id=row.dataset_id,
                name=row.name,
                experiment_ids=loads(row.experiment_ids),
                tags=loads(row.tags),
                digest=row.digest,
                record_count=int(row.record_count),
                create_time_ms=row.create_time_ms,
                update_time_ms=row.update_time_ms,
            )
            for row in conn.execute(query)
        ]

    @wrap_db_errors
    def set_tags(self, dataset_id: str, tags: dict[str, str]) -> Dataset:
        checked = _check_tags(tags)
        with self.engine.begin() as conn:
            current = self._tags_for_update(conn, dataset_id)
            self._write_tags(conn, dataset_id, {**current, **checked})
        return self.get(dataset_id)

    @wrap_db_errors
    def delete_tag(self, dataset_id: str, key: str) -> Dataset:
        with self.engine.begin() as conn:
            current = self._tags_for_update(conn, dataset_id)
            current.pop(key, None)
            self._write_tags(conn, dataset_id, current)
        return self.get(dataset_id)

    def _tags_for_update(self, conn: Connection, dataset_id: str) -> dict[str, str]:
        query = select(s.datasets.c.tags).where(s.datasets.c.dataset_id == dataset_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise DatasetNotFoundError(f"No dataset with id {dataset_id!r}.")
        return dict(loads(row[0]))

    @staticmethod
    def _write_tags(conn: Connection, dataset_id: str, tags: dict[str, str]) -> None:
        conn.execute(
            update(s.datasets)
            .where(s.datasets.c.dataset_id == dataset_id)
            .values(tags=dumps(tags), update_time_ms=_now_ms())
        )

    @wrap_db_errors
    def delete(self, dataset_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(s.dataset_records).where(s.dataset_records.c.dataset_id == dataset_id)
            )
            gone = conn.execute(delete(s.datasets).where(s.datasets.c.dataset_id == dataset_id))
        if not gone.rowcount:
            raise DatasetNotFoundError(f"No dataset with id {dataset_id!r}.")

    # ------------------------------------------------------------- records

    @wrap_db_errors
    def merge_records(self, dataset_id: str, records: Iterable[DatasetRecord]) -> dict[str, int]:
        """Add the records; one whose inputs are already in the dataset (or earlier in
        ``records``) has its expectations and tags merged into that record, the new values
        winning. Returns ``{"inserted": n, "updated": m}``."""
        merged: dict[str, DatasetRecord] = {}
        for record in records:
            if not isinstance(record.inputs, dict) or not record.inputs:
                raise InvalidArgumentError("A dataset record's inputs must be a non-empty dict.")
            key = inputs_digest(record.inputs)
            earlier = merged.get(key)
            merged[key] = record if earlier is None else _merge(earlier, record)
        now = _now_ms()
        r = s.dataset_records.c
        with self.engine.begin() as conn:
            total = int(self._require(conn, dataset_id, lock=True), 16)
            existing: dict[str, Any] = {}
            keys = list(merged)
            for start in range(0, len(keys), _CHUNK):
                query = select(s.dataset_records).where(
                    r.dataset_id == dataset_id, r.inputs_digest.in_(keys[start : start + _CHUNK])
                )
                for row in conn.execute(query):
                    existing[row.inputs_digest] = row
            rows = []
            first_id = time_ordered_int()  # new records' ids count up from it, in merge order
            for position, (key, record) in enumerate(merged.items()):
                old = existing.get(key)
                expectations, tags = record.expectations, record.tags
                if old is not None:
                    expectations = {**loads(old.expectations), **expectations}
                    tags = {**loads(old.tags), **tags}
                    total -= _record_hash(key, old.expectations)
                expectations_json = dumps(expectations)
                total += _record_hash(key, expectations_json)
                rows.append(
                    {
                        "dataset_id": dataset_id,
                        "record_id": (
                            old.record_id if old is not None else f"r-{first_id + position:032x}"
                        ),
                        "inputs_digest": key,
                        "inputs": dumps(record.inputs),
                        "expectations": expectations_json,
                        "tags": dumps({str(k): str(v) for k, v in tags.items()}),
                        "source_type": (
                            old.source_type if old is not None else record.source_type.value
                        ),
                        "source_id": old.source_id if old is not None else record.source_id,
                        "create_time_ms": old.create_time_ms if old is not None else now,
                        "update_time_ms": now,
                    }
                )
            if rows:
                rows, _ = sanitize.fit_rows(
                    s.dataset_records, rows, ["dataset_id", "inputs_digest"]
                )
                insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(
                    s.dataset_records
                )
                changing = ("expectations", "tags", "update_time_ms")
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=["dataset_id", "inputs_digest"],
                        set_={c: insert.excluded[c] for c in changing},
                    ),
                    rows,
                )
            conn.execute(
                update(s.datasets)
                .where(s.datasets.c.dataset_id == dataset_id)
                .values(digest=f"{total % _MODULUS:064x}", update_time_ms=now)
            )
        return {"inserted": len(merged) - len(existing), "updated": len(existing)}

    def _require(self, conn: Connection, dataset_id: str, lock: bool = False) -> str:
        """The dataset's digest; it must exist. ``lock``: on PostgreSQL its row stays locked
        until the transaction commits, so merges into one dataset take turns."""
        query = select(s.datasets.c.digest).where(s.datasets.c.dataset_id == dataset_id)
        if lock and self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise DatasetNotFoundError(f"No dataset with id {dataset_id!r}.")
        return str(row[0])

    @wrap_db_errors
    def records(self, dataset_id: str) -> list[DatasetRecord]:
        """Every record, in the order they were first merged (and given, within a merge)."""
        r = s.dataset_records.c
        with self.engine.connect() as conn:
            self._require(conn, dataset_id)
            query = (
                select(s.dataset_records).where(r.dataset_id == dataset_id).order_by(r.record_id)
            )
            return [
                DatasetRecord.from_dict(
                    {
                        "inputs": loads(row.inputs),
                        "expectations": loads(row.expectations),
                        "tags": loads(row.tags),
                        "source_type": row.source_type,
                        "source_id": row.source_id,
                        "record_id": row.record_id,
                        "create_time_ms": row.create_time_ms,
                        "update_time_ms": row.update_time_ms,
                    }
                )
                for row in conn.execute(query)
            ]


def _merge(earlier: DatasetRecord, later: DatasetRecord) -> DatasetRecord:
    return DatasetRecord(
        inputs=later.inputs,
        expectations={**earlier.expectations, **later.expectations},
        tags={**earlier.tags, **later.tags},
        source_type=earlier.source_type,
        source_id=earlier.source_id,
    )


__all__ = ["SqlDatasetStore"]
