"""The SQL trace store (SQLite and PostgreSQL) on SQLAlchemy Core."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tracejudge.entities import Assessment, EvaluationRun, Experiment, Span, Trace, TraceData
from tracejudge.entities.experiment import DEFAULT_EXPERIMENT_ID
from tracejudge.errors import (
    AssessmentNotFoundError,
    ExperimentNotFoundError,
    InvalidArgumentError,
    RunNotFoundError,
    TraceNotFoundError,
)
from tracejudge.query import And, parse_filter
from tracejudge.store import (
    db_errors,
    filter_sql,
    hourly_rollups,
    keyset,
    rows,
    sanitize,
    sqlite_bulk,
    stats,
    text_search,
)
from tracejudge.store import schema as s
from tracejudge.store.base import GC_BATCH, PagedList
from tracejudge.store.dataset_sql import SqlDatasetStore
from tracejudge.store.db_errors import wrap_db_errors
from tracejudge.store.engine import (
    create_store_engine,
    immediate_transaction,
    migrate,
    plan_as_short_query,
)
from tracejudge.store.filter_sql import to_sql
from tracejudge.store.monitor_sql import SqlMonitorStore
from tracejudge.store.plan_hints import NotIndexed

GC_BATCH_SECONDS = 0.1
GC_BATCH_MIN, GC_BATCH_MAX = 50, 5000
"""Retention sizes its delete transactions to take about this long, within these bounds."""
FEW_ROWS = 20_000
"""A time range with fewer traces than this is read and sorted; a wider one is checked while
walking the index of the order asked for (SQLite; see ``SqlTraceStore._where``)."""
_WORD_SEARCHED = {table for table, _ in text_search.SQLITE_FTS_TABLES.values()}
"""Tables whose SQLite writes go through ``sqlite_bulk`` (FTS5 triggers make per-row statements slow)."""
_IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit
MAX_PAGE_SIZE = 50_000
"""The most traces one search call returns; larger ``max_results`` are capped to it (the page
token then continues), so that no request asks the database for an unbounded LIMIT."""
SANITIZED_METADATA_KEY = "tracejudge.sanitized"
"""Trace metadata naming the values the store changed to fit (NUL replaced, text clipped)."""
_UPDATABLE = {"value", "rationale", "metadata", "valid", "error", "source", "span_id", "run_id"}


def _refuse_moves(conn: Connection, incoming: Sequence[dict[str, Any]]) -> None:
    """InvalidArgumentError for an assessment id already stored on another trace: its upsert
    would move the verdict to this trace and leave the other's current verdict unmarked."""
    home = {row["assessment_id"]: row["trace_id"] for row in incoming}
    a = s.assessments.c
    for chunk in _chunks(sorted(home)):
        query = select(a.assessment_id, a.trace_id).where(a.assessment_id.in_(chunk))
        for found in conn.execute(query):
            if found.trace_id != home[found.assessment_id]:
                raise InvalidArgumentError(
                    f"Assessment {found.assessment_id!r} belongs to trace {found.trace_id!r}, "
                    f"not {home[found.assessment_id]!r}; log a new assessment instead."
                )


def _require_positive(name: str, value: Any) -> None:
    """InvalidArgumentError unless ``value`` is an integer ≥ 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, not {value!r}.")


def _check_span_homes(trace_id: str, spans: Iterable[Span]) -> None:
    """InvalidArgumentError for a span that names another trace than the one it is sent with."""
    for span in spans:
        if span.trace_id != trace_id:
            raise InvalidArgumentError(
                f"Span {span.span_id!r} belongs to trace {span.trace_id!r}, not {trace_id!r}."
            )


@dataclass
class _TraceRows:
    """Traces as the rows of each table (``log_traces`` builds them before its write
    transaction opens)."""

    experiments: set[str]
    traces: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    metadata: list[dict[str, Any]]
    stamped: list[Assessment]
    assessments: list[dict[str, Any]]


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]


def _sanitized_notes(changes: Sequence[sanitize.Change]) -> list[dict[str, Any]]:
    """One ``tracejudge.sanitized`` metadata row per trace whose values were changed to fit."""
    by_trace: dict[str, list[sanitize.Change]] = defaultdict(list)
    for change in changes:
        if change.trace_id is not None:
            by_trace[change.trace_id].append(change)
    return [
        {"trace_id": tid, "key": SANITIZED_METADATA_KEY, "value": sanitize.describe(found)}
        for tid, found in by_trace.items()
    ]


def _lock_key(trace_id: str) -> int:
    """A signed 64-bit advisory-lock key for a trace id."""
    return int.from_bytes(
        hashlib.blake2b(trace_id.encode(), digest_size=8).digest(), "big", signed=True
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqlTraceStore:
    """A :class:`~tracejudge.store.base.TraceStore` on SQLite (default) or PostgreSQL.

    Opening a store applies any pending Alembic migration, so an empty file or database is
    ready to use.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.engine = create_store_engine(uri)
        self.dialect = self.engine.dialect.name
        self._known_experiments: set[str] = set()
        try:
            migrate(self.engine)
        except SQLAlchemyError as exc:
            raise db_errors.translate(exc, f"Opening the tracking store {uri!r}") from exc

    @functools.cached_property
    def monitor(self) -> SqlMonitorStore:
        """The monitoring tables: registered scorers and the monitor's claims on traces."""
        return SqlMonitorStore(self.engine)

    @functools.cached_property
    def datasets(self) -> SqlDatasetStore:
        """Evaluation datasets and their records."""
        return SqlDatasetStore(self.engine)

    def __repr__(self) -> str:
        return f"SqlTraceStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def trace_locks(self, trace_ids: Iterable[str]) -> Iterator[None]:
        """Hold a lock per trace across every process using this database, for a
        read-merge-write of those traces (PostgreSQL advisory locks; on SQLite nothing: the
        write transaction of :meth:`merge_traces` takes the database's write lock before it
        reads)."""
        if self.dialect != "postgresql":
            yield
            return
        keys = sorted({_lock_key(t) for t in trace_ids})  # one order everywhere: no deadlocks
        with self.engine.connect() as conn:
            for key in keys:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                for key in reversed(keys):
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    def forget_connections(self) -> None:
        """After a fork: new connections for this process, the parent's left to the parent."""
        self.engine.dispose(close=False)

    # ---------------------------------------------------------------- helpers

    def _upsert(
        self, conn: Connection, table: Table, values: list[dict[str, Any]], keys: list[str]
    ) -> list[sanitize.Change]:
        """Insert or replace rows, fitted to the table first; returns what fitting changed."""
        if not values:
            return []
        values, changes = sanitize.fit_rows(table, values, keys)
        if self.dialect == "sqlite" and len(values) > 1 and table.name in _WORD_SEARCHED:
            try:
                sqlite_bulk.upsert(conn, table, values, keys)
                return changes
            except TypeError:  # a value JSON cannot carry exactly: the row-by-row path below
                pass
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), values)
        return changes

    @staticmethod
    def _refresh_latest(
        conn: Connection, changed: Iterable[Assessment], incoming: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Mark the newest valid assessment of each (trace, kind, name) touched as ``latest``.

        With ``incoming`` (assessment rows about to be written, ``changed`` their assessments),
        called before the write: their marks are set in the rows, so each is written once
        rather than inserted and then updated (an update of an indexed column writes every
        index of the table again), and only stored rows whose mark changes are updated.
        Without it, called after a change (an update, a delete), it re-marks what is stored.

        The touched traces' assessments are read by trace id and written by primary key: both
        are index lookups on any database and any statistics, so a write costs the same in an
        empty store and in a full one (a single ``UPDATE … = (SELECT … LIMIT 1)`` let
        PostgreSQL pick a plan that grew with the table).
        """
        keys = {
            (
                a.trace_id,
                a.kind,
                sanitize.fit_value(s.assessments, "name", getattr(a, "name", None)),
            )
            for a in changed
        }
        if not keys:
            return
        a = s.assessments.c
        trace_ids = sorted({t for t, _, _ in keys if t is not None})
        if conn.dialect.name == "postgresql":  # writers of one trace's verdicts take turns
            t = s.traces.c
            for chunk in _chunks(trace_ids):
                conn.execute(
                    select(t.trace_id)
                    .where(t.trace_id.in_(chunk))
                    .order_by(t.trace_id)
                    .with_for_update()
                ).all()
        replaced = {row["assessment_id"] for row in incoming}
        _refuse_moves(conn, incoming)
        peers: dict[tuple[Any, ...], dict[Any, tuple[bool, Any, bool | None]]] = defaultdict(dict)
        columns = (a.assessment_id, a.trace_id, a.kind, a.name, a.valid, a.latest, a.create_time_ms)
        for chunk in _chunks(trace_ids):
            for r in conn.execute(select(*columns).where(a.trace_id.in_(chunk))):
                if (r.trace_id, r.kind, r.name) in keys and r.assessment_id not in replaced:
                    peers[(r.trace_id, r.kind, r.name)][r.assessment_id] = (
                        bool(r.valid),
                        r.create_time_ms,
                        bool(r.latest),
                    )
        for row in incoming:  # not stored yet (or replacing the stored row): no stored mark
            name = sanitize.fit_value(s.assessments, "name", row["name"])
            peers[(row["trace_id"], row["kind"], name)][row["assessment_id"]] = (
                bool(row["valid"]),
                row["create_time_ms"],
                None,
            )
        marks: dict[Any, bool] = {}
        for members in peers.values():
            valid = [(created, aid) for aid, (ok, created, _) in members.items() if ok]
            newest = max(valid)[1] if valid else None
            marks.update((aid, aid == newest) for aid in members)
        for row in incoming:
            row["latest"] = marks[row["assessment_id"]]
        flips = [
            {"p_id": aid, "p_latest": marks[aid]}
            for members in peers.values()
            for aid, (_, _, stored) in members.items()
            if stored is not None and stored != marks[aid]
        ]
        if flips:
            conn.execute(
                update(s.assessments)
                .where(a.assessment_id == bindparam("p_id"))
                .values(latest=bindparam("p_latest")),
                flips,
            )

    def _require_trace(self, conn: Connection, trace_id: str) -> None:
        found = conn.execute(
            select(s.traces.c.trace_id).where(s.traces.c.trace_id == trace_id)
        ).first()
        if found is None:
            raise TraceNotFoundError(f"No trace with id {trace_id!r} in {self.uri}.")

    # ------------------------------------------------------------ experiments

    @wrap_db_errors
    def create_experiment(self, name: str) -> Experiment:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("An experiment needs a non-empty name.")
        if len(name) > 256 or sanitize.NUL in name:
            raise InvalidArgumentError(
                "An experiment name must be at most 256 characters, with no NUL character."
            )
        with self.engine.begin() as conn:
            try:
                conn.execute(insert(s.experiments).values(name=name, creation_time=_now_ms()))
            except IntegrityError:
                raise InvalidArgumentError(
                    f"An experiment named {name!r} already exists."
                ) from None
        found = self.get_experiment_by_name(name)
        assert found is not None
        return found

    @wrap_db_errors
    def get_experiment(self, experiment_id: str) -> Experiment:
        try:
            key = int(experiment_id)
        except (TypeError, ValueError):
            raise ExperimentNotFoundError(f"No experiment with id {experiment_id!r}.") from None
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.experiments).where(s.experiments.c.experiment_id == key))
                .mappings()
                .first()
            )
        if row is None:
            raise ExperimentNotFoundError(f"No experiment with id {experiment_id!r}.")
        return rows.experiment_from_row(row)

    @wrap_db_errors
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.experiments).where(s.experiments.c.name == name))
                .mappings()
                .first()
            )
        return rows.experiment_from_row(row) if row else None

    def get_or_create_experiment(self, name: str) -> Experiment:
        found = self.get_experiment_by_name(name)
        if found is not None:
            return found
        try:
            return self.create_experiment(name)
        except InvalidArgumentError:  # created meanwhile by another process
            again = self.get_experiment_by_name(name)
            if again is None:
                raise
            return again

    @wrap_db_errors
    def list_experiments(self) -> list[Experiment]:
        with self.engine.connect() as conn:
            result = conn.execute(
                select(s.experiments).order_by(s.experiments.c.experiment_id)
            ).mappings()
            return [rows.experiment_from_row(r) for r in result]

    def experiment_activity(self) -> dict[str, dict[str, int | None]]:
        t = s.traces.c
        query = select(t.experiment_id, func.count(), func.max(t.timestamp_ms)).group_by(
            t.experiment_id
        )
        with self.engine.connect() as conn:
            return {
                str(experiment): {"trace_count": int(count), "last_trace_ms": last}
                for experiment, count, last in conn.execute(query)
            }

    # ----------------------------------------------------------------- traces

    def _require_experiments(self, conn: Connection, experiment_ids: Iterable[str]) -> None:
        """ExperimentNotFoundError unless every id names an experiment (checked before writing,
        so a trace of an unknown experiment is the client's error, not a refused transaction).
        Experiments are never deleted, so the ids seen once are not asked for again."""
        keys: dict[str, int] = {}
        for eid in set(experiment_ids) - self._known_experiments:
            try:
                keys[eid] = int(eid)
            except (TypeError, ValueError):
                raise ExperimentNotFoundError(f"No experiment with id {eid!r}.") from None
        if not keys:
            return
        column = s.experiments.c.experiment_id
        found = {r[0] for r in conn.execute(select(column).where(column.in_(list(keys.values()))))}
        missing = sorted(repr(e) for e, k in keys.items() if k not in found)
        if missing:
            raise ExperimentNotFoundError(
                f"No experiment with id {', '.join(missing)}; create it first "
                "(set_experiment / get_or_create_experiment)."
            )
        self._known_experiments.update(keys)

    @wrap_db_errors
    def log_traces(self, traces: Sequence[Trace]) -> None:
        written = self._rows_of(traces)
        with self._writing() as conn:
            self._write_rows(conn, written)

    @wrap_db_errors
    def merge_traces(
        self, parts: Sequence[Trace], merge: Callable[[Trace | None, Trace], Trace]
    ) -> int:
        ids = list(dict.fromkeys(p.info.trace_id for p in parts))
        # PostgreSQL: the traces' advisory locks; SQLite: the write lock, taken before the read
        with self.trace_locks(ids), self._writing() as conn:
            merged = {t.info.trace_id: t for t in self._read_traces(conn, ids)}
            new = len(ids) - len(merged)
            arrived: dict[str, dict[str, Span]] = defaultdict(dict)
            for part in parts:
                merged[part.info.trace_id] = merge(merged.get(part.info.trace_id), part)
                arrived[part.info.trace_id].update((sp.span_id, sp) for sp in part.data.spans)
            # the trace's own row again, but only the spans that came: a trace exported in
            # many batches would otherwise rewrite (and reindex) all its spans each time
            written = [
                Trace(
                    merged[i].info,
                    dataclasses.replace(merged[i].data, spans=[*arrived[i].values()]),
                )
                for i in ids
            ]
            self._write_rows(conn, self._rows_of(written))
        return new

    def _writing(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction. On SQLite it takes the write lock at its start, so that what
        it reads before writing (the verdicts whose ``latest`` mark it sets) cannot change in
        between: the driver's own transactions begin at the first write, and two writers that
        both read first each marked their own verdict as the current one."""
        if self.dialect == "sqlite":
            return immediate_transaction(self.engine)
        return self.engine.begin()

    def _rows_of(self, traces: Sequence[Trace]) -> _TraceRows:
        trace_rows: list[dict[str, Any]] = []
        span_rows: list[dict[str, Any]] = []
        tag_rows: list[dict[str, Any]] = []
        meta_rows: list[dict[str, Any]] = []
        assessment_rows: list[dict[str, Any]] = []
        stamped: list[Assessment] = []
        for trace in traces:
            info = trace.info
            if not str(info.experiment_id).isdigit():
                raise ExperimentNotFoundError(f"No experiment with id {info.experiment_id!r}.")
            _check_span_homes(info.trace_id, trace.data.spans)
            trace_rows.append(rows.trace_row(trace))
            span_rows.extend(rows.span_row(sp) for sp in trace.data.spans)
            tag_rows.extend(
                {"trace_id": info.trace_id, "key": k, "value": v} for k, v in info.tags.items()
            )
            meta_rows.extend(
                {"trace_id": info.trace_id, "key": k, "value": v}
                for k, v in info.trace_metadata.items()
            )
            stamped.extend(a.stamped(info.trace_id) for a in info.assessments)
        assessment_rows = [rows.assessment_row(a) for a in stamped]
        experiments = {t.info.experiment_id for t in traces}
        return _TraceRows(
            experiments, trace_rows, span_rows, tag_rows, meta_rows, stamped, assessment_rows
        )

    def _write_rows(self, conn: Connection, written: _TraceRows) -> None:
        self._require_experiments(conn, written.experiments)
        self._refresh_latest(conn, written.stamped, written.assessments)
        changes = self._upsert(conn, s.traces, written.traces, ["trace_id"])
        changes += self._upsert(conn, s.spans, written.spans, ["trace_id", "span_id"])
        changes += self._upsert(conn, s.trace_tags, written.tags, ["trace_id", "key"])
        changes += self._upsert(conn, s.trace_metadata, written.metadata, ["trace_id", "key"])
        changes += self._upsert(conn, s.assessments, written.assessments, ["assessment_id"])
        self._upsert(conn, s.trace_metadata, _sanitized_notes(changes), ["trace_id", "key"])

    @wrap_db_errors
    def log_spans(self, trace_id: str, spans: Sequence[Span]) -> None:
        with self.engine.begin() as conn:
            self._require_trace(conn, trace_id)
            _check_span_homes(trace_id, spans)
            self._upsert(
                conn, s.spans, [rows.span_row(sp) for sp in spans], ["trace_id", "span_id"]
            )

    def _load_details(
        self, conn: Connection, trace_rows: Sequence[Any], include_spans: bool
    ) -> list[Trace]:
        ids = [r["trace_id"] for r in trace_rows]
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        meta: dict[str, dict[str, str]] = defaultdict(dict)
        found: dict[str, list[Assessment]] = defaultdict(list)
        spans: dict[str, list[Span]] = defaultdict(list)
        for chunk in _chunks(ids):
            for table, target in ((s.trace_tags, tags), (s.trace_metadata, meta)):
                for r in conn.execute(select(table).where(table.c.trace_id.in_(chunk))).mappings():
                    target[r["trace_id"]][r["key"]] = r["value"]
            query = (
                select(s.assessments)
                .where(s.assessments.c.trace_id.in_(chunk))
                .order_by(s.assessments.c.create_time_ms, s.assessments.c.assessment_id)
            )
            for r in conn.execute(query).mappings():
                found[r["trace_id"]].append(rows.assessment_from_row(r))
            if include_spans:
                query = (
                    select(s.spans.c.trace_id, s.spans.c.content)
                    .where(s.spans.c.trace_id.in_(chunk))
                    .order_by(s.spans.c.start_time_ns, s.spans.c.span_id)
                )
                for r in conn.execute(query).mappings():
                    spans[r["trace_id"]].append(rows.span_from_row(r))
        out = []
        for r in trace_rows:
            tid = r["trace_id"]
            info = rows.trace_info_from_row(r, tags[tid], meta[tid], found[tid])
            out.append(Trace(info, TraceData(spans[tid], r["request"], r["response"])))
        return out

    @wrap_db_errors
    def get_trace(self, trace_id: str, include_spans: bool = True) -> Trace | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.traces).where(s.traces.c.trace_id == trace_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            return self._load_details(conn, [row], include_spans)[0]

    @wrap_db_errors
    def get_traces(self, trace_ids: Sequence[str], include_spans: bool = True) -> list[Trace]:
        with self.engine.connect() as conn:
            return self._read_traces(conn, trace_ids, include_spans)

    def _read_traces(
        self, conn: Connection, trace_ids: Sequence[str], include_spans: bool = True
    ) -> list[Trace]:
        found: list[Any] = []
        for chunk in _chunks(list(dict.fromkeys(trace_ids))):
            query = select(s.traces).where(s.traces.c.trace_id.in_(chunk))
            found.extend(conn.execute(query).mappings())
        return self._load_details(conn, found, include_spans)

    @wrap_db_errors
    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_spans: bool = True,
    ) -> PagedList[Trace]:
        _require_positive("max_results", max_results)
        max_results = min(max_results, MAX_PAGE_SIZE)  # a page beyond this is read in pages
        if isinstance(order_by, str):
            order_by = [order_by]
        parsed = parse_filter(filter_string)
        keys = keyset.sort_keys(order_by)
        digest = keyset.search_digest(experiment_ids, filter_string, order_by)
        values = keyset.decode_token(page_token, digest, keys) if page_token else None
        feedback_key = keyset.single_feedback_order(order_by)
        with self.engine.connect() as conn:
            plan_as_short_query(conn)
            time_ordered = feedback_key is not None or keys[0].expr is s.traces.c.timestamp_ms
            where, from_hits = self._where(conn, parsed, experiment_ids, time_ordered)
            if from_hits:  # nor may SQLite walk an index in the sort order (see ``_where``)
                keys = [keyset.SortKey(NotIndexed(k.expr), k.ascending, k.nullable) for k in keys]
            if feedback_key is not None:
                queries = keyset.feedback_ordered_queries(feedback_key, where, values)
            elif keyset.is_one_nullable_key(keys):
                queries = keyset.nullable_ordered_queries(keys, where, values)
            else:
                sort_columns = [k.expr.label(f"_sort{i}") for i, k in enumerate(keys[:-1])]
                query = select(s.traces, *sort_columns).where(*where)
                if values is not None:
                    query = query.where(keyset.after_condition(keys, values))
                queries = [query.order_by(*keyset.order_clauses(keys))]
            result: list[Any] = []
            for query in queries:  # later queries continue where earlier ones ran out
                wanted = max_results + 1 - len(result)
                result.extend(conn.execute(query.limit(wanted)).mappings())
                if len(result) > max_results:
                    break
            page_rows = result[:max_results]
            traces = self._load_details(conn, page_rows, include_spans)
        token = None
        if len(result) > max_results and page_rows:
            last = page_rows[-1]
            last_values = [last[f"_sort{i}"] for i in range(len(keys) - 1)] + [last["trace_id"]]
            token = keyset.encode_token(last_values, digest)
        return PagedList(traces, token)

    def _where(
        self,
        conn: Connection,
        parsed: Any,
        experiment_ids: Sequence[str] | None,
        time_ordered: bool = True,
    ) -> tuple[list[Any], bool]:
        """The WHERE terms of a search (the filter and the experiments), and whether the rows
        are to be found from a word's hits.

        Word search on SQLite is planned here, where a connection is at hand: each MATCH's hits
        are counted (up to ``text_search.FEW_HITS``). When a word every result must hold is
        rare, the experiment term is hidden from the planner (``+experiment_id``; the caller
        hides the sort keys likewise), so that SQLite looks the few matching rows up from the
        hits and sorts them, instead of walking the whole experiment in time order.

        Likewise a time range under another order (slowest first): SQLite cannot tell a wide
        range from a narrow one. The range is counted (up to ``FEW_ROWS``); a wide one is
        hidden from the planner, which then walks the order's index and checks the range in
        it (``ix_traces_exp_duration`` carries the start time), where a narrow one is read and
        sorted. PostgreSQL decides both from its statistics.
        """
        plans: dict[Any, bool] = {}
        if self.dialect == "sqlite":
            for cmp in filter_sql.word_comparisons(parsed):
                table = "spans" if cmp.field.kind == "span" else "traces"
                field = "content" if cmp.field.kind == "span" else cmp.field.key
                hits = text_search.count_hits(conn, table, field, str(cmp.value))
                plans[cmp] = hits < text_search.FEW_HITS
        from_hits = any(plans.get(c) for c in filter_sql.required_matches(parsed))
        scope: list[Any] = []
        if experiment_ids:
            keys_in = [self._experiment_key(e) for e in experiment_ids]
            experiment: Any = s.traces.c.experiment_id
            if from_hits:
                experiment = NotIndexed(experiment)
            # one experiment as "=": PostgreSQL reads an index in order after "=", not "= ANY"
            scope.append(experiment == keys_in[0] if len(keys_in) == 1 else experiment.in_(keys_in))
        hidden: list[Any] = []
        bounds = filter_sql.time_bounds(parsed)
        if self.dialect == "sqlite" and not time_ordered and not from_hits and bounds:
            in_range: Any = select(literal_column("1")).where(*scope, to_sql(And(tuple(bounds))))
            counted = select(func.count()).select_from(in_range.limit(FEW_ROWS).subquery())
            if conn.execute(counted).scalar_one() >= FEW_ROWS:
                hidden = bounds
        return [to_sql(parsed, plans, hidden), *scope], from_hits

    @staticmethod
    def _experiment_key(experiment_id: str) -> int:
        try:
            return int(experiment_id)
        except (TypeError, ValueError):
            raise ExperimentNotFoundError(f"No experiment with id {experiment_id!r}.") from None

    @wrap_db_errors
    def trace_stats(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        group_by: str | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Aggregates of the matching traces per group: from the per-hour sums when the filter
        is at most a time range (``hourly_rollups``), else computed in SQL over the matching
        traces (``stats``)."""
        parsed = parse_filter(filter_string)
        names = list(metrics or stats.DEFAULT_METRICS)
        if hourly_rollups.answers(parsed, group_by, names):
            keys = [self._experiment_key(e) for e in experiment_ids] if experiment_ids else None
            return hourly_rollups.compute(self.engine, keys, parsed, group_by, names)
        with self.engine.connect() as conn:
            where, _ = self._where(conn, parsed, experiment_ids)
            return stats.compute(conn, self.dialect, where, group_by, names)

    @wrap_db_errors
    def delete_traces_before(
        self,
        before_ms: int,
        experiment_ids: Sequence[str] | None = None,
        batch_size: int | None = None,
        max_batches: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete the traces that started before ``before_ms``, oldest first, one transaction per
        batch so that a writer waits for one batch at most; stops after ``max_batches`` if
        given. Returns how many were deleted and calls ``on_batch`` with each batch's count.

        Without ``batch_size`` each batch is sized to take about ``GC_BATCH_SECONDS``, starting
        from ``GC_BATCH`` traces: SQLite deleted 2,000 traces/s (word-search index included)
        and its writers waited up to 0.7 s behind a batch of 1,000; PostgreSQL, 7,500/s.
        Later writes reuse the space at once; :meth:`reclaim_space` gives it back sooner.
        """
        if batch_size is not None:
            _require_positive("batch_size", batch_size)
        t = s.traces.c
        query = select(t.trace_id).where(t.timestamp_ms < int(before_ms))
        if experiment_ids:
            query = query.where(
                t.experiment_id.in_([self._experiment_key(e) for e in experiment_ids])
            )
        query = query.order_by(t.timestamp_ms, t.trace_id)
        size = batch_size or GC_BATCH
        total = batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            started = time.perf_counter()
            with self.engine.connect() as conn:
                ids = list(conn.execute(query.limit(size)).scalars())
            if not ids:
                return total
            deleted = self.delete_traces(ids)
            total += deleted
            if on_batch is not None:
                on_batch(deleted)
            if batch_size is None:  # aim the next batch at GC_BATCH_SECONDS
                took = max(time.perf_counter() - started, 1e-3)
                size = int(min(GC_BATCH_MAX, max(GC_BATCH_MIN, size * GC_BATCH_SECONDS / took)))
        return total

    @wrap_db_errors
    def fill_hourly_rollups(self, experiment_ids: Sequence[str] | None = None) -> int:
        """Store the hourly sums of every ended hour not stored yet, so that the next
        dashboard aggregate reads stored hours; returns the hours computed (0 when all were
        stored). The tracking server runs it in the background."""
        keys = [self._experiment_key(e) for e in experiment_ids] if experiment_ids else None
        return hourly_rollups.fill(self.engine, keys)

    @wrap_db_errors
    def reclaim_space(self, full: bool = False) -> None:
        """After a large delete: PostgreSQL ``VACUUM ANALYZE`` (writers go on meanwhile);
        SQLite compacts its word-search indexes (:meth:`compact_word_search`) and truncates its
        write-ahead log, and with ``full`` first rewrites the file (``VACUUM``, which holds
        every writer until it ends) and re-indexes word search, whose link to the rows VACUUM
        may renumber."""
        tables = ["traces", "spans", "trace_tags", "trace_metadata", "assessments"]
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(tables)}")
                return
            if full:
                conn.exec_driver_sql("VACUUM")
                for statement in text_search.rebuild_statements(self.dialect):
                    conn.exec_driver_sql(statement)
        self.compact_word_search()
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    @wrap_db_errors
    def compact_word_search(self, max_seconds: float | None = None) -> int:
        """Merge each word-search index into one segment (SQLite), in short steps that writers
        interleave with; returns the steps taken. FTS5 keeps merging as rows arrive but leaves
        several segments per level, and a probe of a common word visits every segment: at 1M
        traces a span-payload search took 214 ms before and 83 ms after. PostgreSQL's GIN
        indexes need nothing (VACUUM folds their pending entries in)."""
        if self.dialect != "sqlite":
            return 0
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        steps = 0
        for fts in text_search.SQLITE_FTS_TABLES:
            start = True
            while deadline is None or time.monotonic() < deadline:
                with self.engine.begin() as conn:
                    raw = conn.connection.dbapi_connection
                    before = raw.total_changes  # type: ignore[union-attr]
                    conn.exec_driver_sql(text_search.merge_statement(fts, start))
                    merged = raw.total_changes - before >= 2  # type: ignore[union-attr]
                steps += 1
                start = False
                if not merged:
                    break
        return steps

    @wrap_db_errors
    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        deleted = 0
        with self.engine.begin() as conn:
            for chunk in _chunks(list(trace_ids)):
                for table in (s.spans, s.trace_tags, s.trace_metadata, s.assessments):
                    conn.execute(delete(table).where(table.c.trace_id.in_(chunk)))
                deleted += conn.execute(
                    delete(s.traces).where(s.traces.c.trace_id.in_(chunk))
                ).rowcount
        return deleted

    # ------------------------------------------------------------------- tags

    @wrap_db_errors
    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        if not isinstance(key, str) or not key or len(key) > 250:
            raise InvalidArgumentError(
                "A tag key must be a non-empty string of at most 250 characters."
            )
        with self.engine.begin() as conn:
            self._require_trace(conn, trace_id)
            self._upsert(
                conn,
                s.trace_tags,
                [{"trace_id": trace_id, "key": key, "value": str(value)}],
                ["trace_id", "key"],
            )

    @wrap_db_errors
    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        with self.engine.begin() as conn:
            self._require_trace(conn, trace_id)
            t = s.trace_tags.c
            if (
                conn.execute(
                    delete(s.trace_tags).where(t.trace_id == trace_id, t.key == key)
                ).rowcount
                == 0
            ):
                raise InvalidArgumentError(f"Trace {trace_id!r} has no tag {key!r}.")

    # ------------------------------------------------------------ assessments

    @wrap_db_errors
    def log_assessments(self, assessments: Sequence[Assessment]) -> list[Assessment]:
        stored = []
        for a in assessments:
            if not a.trace_id:
                raise InvalidArgumentError("An assessment to log needs its trace_id.")
            stored.append(a.stamped(a.trace_id))
        with self._writing() as conn:
            for trace_id in {a.trace_id for a in stored}:
                assert trace_id is not None
                self._require_trace(conn, trace_id)
            if stored:  # an upsert on the id: a retried write replaces, it does not duplicate
                rows_ = [rows.assessment_row(a) for a in stored]
                self._refresh_latest(conn, stored, rows_)
                self._upsert(conn, s.assessments, rows_, ["assessment_id"])
        return stored

    def log_assessment(self, assessment: Assessment) -> Assessment:
        return self.log_assessments([assessment])[0]

    def _fetch_assessment(self, conn: Connection, trace_id: str, assessment_id: str) -> Assessment:
        a = s.assessments.c
        row = (
            conn.execute(
                select(s.assessments).where(
                    a.trace_id == trace_id, a.assessment_id == assessment_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            self._require_trace(conn, trace_id)
            raise AssessmentNotFoundError(
                f"Trace {trace_id!r} has no assessment {assessment_id!r}."
            )
        return rows.assessment_from_row(row)

    @wrap_db_errors
    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        with self.engine.connect() as conn:
            return self._fetch_assessment(conn, trace_id, assessment_id)

    @wrap_db_errors
    def update_assessment(
        self, trace_id: str, assessment_id: str, changes: dict[str, Any]
    ) -> Assessment:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise InvalidArgumentError(
                f"Cannot update {', '.join(sorted(unknown))}; updatable fields: {', '.join(sorted(_UPDATABLE))}."
            )
        with self._writing() as conn:
            current = self._fetch_assessment(conn, trace_id, assessment_id)
            data = current.to_dict()
            for key, value in changes.items():
                data[key] = value.to_dict() if hasattr(value, "to_dict") else value
            data["last_update_time_ms"] = _now_ms()
            try:
                updated = Assessment.from_dict(data)  # validates the new values
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InvalidArgumentError(
                    f"Cannot update the assessment: {type(exc).__name__}: {exc}"
                ) from None
            a = s.assessments.c
            conn.execute(
                update(s.assessments)
                .where(a.assessment_id == assessment_id)
                .values(sanitize.fit_row(s.assessments, rows.assessment_row(updated)))
            )
            self._refresh_latest(conn, [updated])
        return updated

    @wrap_db_errors
    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        with self._writing() as conn:
            gone = self._fetch_assessment(conn, trace_id, assessment_id)
            conn.execute(
                delete(s.assessments).where(s.assessments.c.assessment_id == assessment_id)
            )
            self._refresh_latest(conn, [gone])

    @wrap_db_errors
    def override_assessment(
        self, trace_id: str, assessment_id: str, replacement: Assessment
    ) -> Assessment:
        """Store ``replacement`` and mark the old assessment invalid, in one transaction."""
        with self._writing() as conn:
            old = self._fetch_assessment(conn, trace_id, assessment_id)
            if old.kind != replacement.kind:
                raise InvalidArgumentError(
                    f"Cannot override a {old.kind} with a {replacement.kind}."
                )
            data = replacement.to_dict()
            data.update(
                name=getattr(old, "name", None),
                overrides=assessment_id,
                valid=True,
                assessment_id=None,
                span_id=data["span_id"] or old.span_id,
            )
            new = Assessment.from_dict(data).stamped(trace_id)
            conn.execute(
                update(s.assessments)
                .where(s.assessments.c.assessment_id == assessment_id)
                .values(valid=False, last_update_time_ms=_now_ms())
            )
            conn.execute(
                insert(s.assessments), [sanitize.fit_row(s.assessments, rows.assessment_row(new))]
            )
            self._refresh_latest(conn, [new])
        return new

    # ------------------------------------------------------------------ runs

    @wrap_db_errors
    def create_run(self, run: EvaluationRun) -> None:
        if not str(run.experiment_id).isdigit():
            raise ExperimentNotFoundError(f"No experiment with id {run.experiment_id!r}.")
        with self.engine.begin() as conn:
            self._require_experiments(conn, [run.experiment_id])
            conn.execute(insert(s.runs).values(sanitize.fit_row(s.runs, rows.run_row(run))))
            self._write_run_metrics(conn, run)

    @wrap_db_errors
    def update_run(self, run: EvaluationRun) -> None:
        """Write a run's status, times, usage, scorers and metrics (the metrics are replaced)."""
        with self.engine.begin() as conn:
            values = sanitize.fit_row(s.runs, rows.run_row(run))
            values.pop("run_id")
            result = conn.execute(
                update(s.runs).where(s.runs.c.run_id == run.run_id).values(values)
            )
            if result.rowcount == 0:
                raise RunNotFoundError(f"No evaluation run {run.run_id!r}.")
            conn.execute(delete(s.run_metrics).where(s.run_metrics.c.run_id == run.run_id))
            self._write_run_metrics(conn, run)

    @staticmethod
    def _write_run_metrics(conn: Connection, run: EvaluationRun) -> None:
        metric_rows = [
            {"run_id": run.run_id, "key": k[:256], "value": float(v)}
            for k, v in run.metrics.items()
            if v is not None and not math.isnan(float(v))
        ]
        if metric_rows:
            conn.execute(insert(s.run_metrics), metric_rows)

    def _runs(self, conn: Connection, query: Any) -> list[EvaluationRun]:
        found = list(conn.execute(query).mappings())
        metrics: dict[str, dict[str, float]] = defaultdict(dict)
        ids = [r["run_id"] for r in found]
        for chunk in _chunks(ids):
            query = select(s.run_metrics).where(s.run_metrics.c.run_id.in_(chunk))
            for m in conn.execute(query).mappings():
                metrics[m["run_id"]][m["key"]] = m["value"]
        return [rows.run_from_row(r, metrics[r["run_id"]]) for r in found]

    @wrap_db_errors
    def get_run(self, run_id: str) -> EvaluationRun:
        with self.engine.connect() as conn:
            found = self._runs(conn, select(s.runs).where(s.runs.c.run_id == run_id))
        if not found:
            raise RunNotFoundError(f"No evaluation run {run_id!r}.")
        return found[0]

    @wrap_db_errors
    def search_runs(
        self, experiment_ids: Sequence[str] | None = None, max_results: int = 1000
    ) -> list[EvaluationRun]:
        """Runs, newest first."""
        _require_positive("max_results", max_results)
        query = select(s.runs).order_by(s.runs.c.start_time.desc(), s.runs.c.run_id.desc())
        if experiment_ids:
            query = query.where(
                s.runs.c.experiment_id.in_([self._experiment_key(e) for e in experiment_ids])
            )
        with self.engine.connect() as conn:
            return self._runs(conn, query.limit(max_results))

    @wrap_db_errors
    def get_run_assessments(self, run_id: str) -> list[Assessment]:
        """Every assessment an evaluation run wrote, oldest first."""
        a = s.assessments.c
        query = (
            select(s.assessments)
            .where(a.run_id == run_id)
            .order_by(a.create_time_ms, a.assessment_id)
        )
        with self.engine.connect() as conn:
            return [rows.assessment_from_row(r) for r in conn.execute(query).mappings()]

    # -------------------------------------------------------------- llm cache

    @wrap_db_errors
    def get_cached_call(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.llm_cache.c.response).where(s.llm_cache.c.key == key)
            ).first()
        return None if row is None else str(row[0])

    @wrap_db_errors
    def put_cached_calls(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """Store (key, model, response) entries in one transaction; a key already there is replaced."""
        now = _now_ms()
        cache_rows = [
            {"key": k, "model": m[:512], "response": r, "created_ms": now} for k, m, r in entries
        ]
        with self.engine.begin() as conn:
            self._upsert(conn, s.llm_cache, cache_rows, ["key"])


__all__ = ["DEFAULT_EXPERIMENT_ID", "SqlTraceStore"]
