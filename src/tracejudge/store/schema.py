"""The relational schema of the trace store, as SQLAlchemy Core tables.

The same tables serve SQLite and PostgreSQL. Filterable fields live in indexed columns;
span payloads live in ``spans.content`` and are read only when spans are asked for.
Alembic migrations (``migrations/versions``) create and evolve these tables; this module
is what the store's queries are written against.

Why these indexes (every search is a keyset page: walk an index in the order asked for and
stop after a page, or read a small set and sort it):

- ``ix_traces_exp_time`` (experiment, start, id, status, duration): newest/oldest first within
  an experiment, and the time buckets of ``trace_stats`` read from the index alone (status and
  duration ride along; the rows themselves are wide with request and response text).
- ``ix_traces_time``: the same order over every experiment.
- ``ix_traces_exp_duration`` (experiment, duration, id, start): slowest first; a wide time range
  is checked in the index while walking it. PostgreSQL's copy is in ``DESC NULLS LAST`` order,
  the order the search sorts in (``POSTGRESQL_OWN_INDEXES``).
- ``ix_assessments_trace`` (trace, kind, name, latest): a trace's current verdict, probed once
  per trace by feedback filters. Four equalities: SQLite, planning without statistics,
  prefers it to ``ix_assessments_sort`` only so (and ``plan_hints`` hides ``kind`` to be sure).
- ``ix_assessments_sort`` (kind, name, latest, value, trace): "least trustworthy first" as an
  index walk in value order, joined to the traces.
- Primary keys (trace, key) of tags and metadata serve the per-trace probes; on PostgreSQL a
  B-tree on (key, first ``VALUE_PREFIX`` characters of the value, trace) serves a tag inside an
  OR, which it plans as the set of traces read from that index alone (migration 0009 says why
  not a hash index).
- Every primary key that starts with a trace or assessment id grows at its right edge: the
  SDK's ids lead with their creation millisecond (``entities.ids``), so a batch of new traces
  dirties a few index pages instead of one per row, and a time range's traces are neighbours
  in the per-trace indexes that filters and aggregates probe. Traces that arrive over OTLP
  keep the ids their SDK gave them (usually random).
- ``trace_hours`` (experiment, hour) with ``feedback_hours`` and ``tag_hours`` hanging off it:
  per-hour sums that aggregates over days or the whole store read instead of every trace;
  kept valid by triggers (``hourly_rollups``). ``ix_tag_hours`` leads with (experiment, hour)
  so that a trigger's delete of an hour finds its tag splits by cascade without a scan.
- Word search: FTS5 tables (SQLite) and GIN indexes on ``tsvector`` (PostgreSQL), see
  ``text_search``.

SQLite plans without statistics (no ``ANALYZE`` is run: without STAT4 it cannot tell a wide
time range from a narrow one either way), so where the best plan depends on how many rows match
(a word's hits, a time range's width) the store counts them, capped, and steers the planner
(``SqlTraceStore._where``). PostgreSQL plans from its own statistics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("tags", Text, nullable=True),
)

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(64), primary_key=True),
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("execution_time_ms", BigInteger, nullable=True),
    Column("status", String(32), nullable=False),
    Column("name", String(256), nullable=True),
    Column("client_request_id", String(256), nullable=True),
    Column("request_preview", String(1000), nullable=True),
    Column("response_preview", String(1000), nullable=True),
    Column("request", Text, nullable=True),
    Column("response", Text, nullable=True),
    # newest first within an experiment; status and duration ride along, so that time-bucketed
    # aggregates (count, error rate, latency) read the index alone, never the wide rows
    Index(
        "ix_traces_exp_time",
        "experiment_id",
        "timestamp_ms",
        "trace_id",
        "status",
        "execution_time_ms",
    ),
    Index("ix_traces_time", "timestamp_ms", "trace_id"),  # searches over every experiment
    # slowest first; the start time rides along, so a wide time range is checked in the index.
    # PostgreSQL's copy is ordered (execution_time_ms DESC NULLS LAST, trace_id DESC) as the
    # search sorts: see POSTGRESQL_OWN_INDEXES
    Index(
        "ix_traces_exp_duration", "experiment_id", "execution_time_ms", "trace_id", "timestamp_ms"
    ),
    Index("ix_traces_exp_name", "experiment_id", "name"),
)


def _hour_sums() -> list[Column[Any]]:
    """The sums kept per hour (and per tag value): traces, failed ones, those with a duration,
    the durations' sum, and their latency histogram (``latency_sketch``)."""
    return [
        Column("traces", BigInteger, nullable=False),
        Column("errors", BigInteger, nullable=False),
        Column("timed", BigInteger, nullable=False),
        Column("duration_sum", BigInteger, nullable=False),
        Column("durations", LargeBinary, nullable=False),
    ]


trace_hours = Table(
    "trace_hours",
    metadata,
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("hour_ms", BigInteger, primary_key=True),
    *_hour_sums(),
)
"""One experiment's traces of one closed UTC hour, summed up for ``trace_stats`` (see
``hourly_rollups``): counts, errors, the durations' count and sum, and a latency histogram
(``latency_sketch``). Triggers on ``traces``, ``assessments`` and ``trace_tags`` delete a row
whenever a trace of its hour, its feedback or its tags are written or deleted; the next
aggregate over that hour, or the server's background fill, computes it again."""

feedback_hours = Table(
    "feedback_hours",
    metadata,
    Column("experiment_id", Integer, primary_key=True),
    Column("hour_ms", BigInteger, primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("verdicts", BigInteger, nullable=False),
    Column("scored", BigInteger, nullable=False),
    Column("score_sum", Float, nullable=False),
    Column("judged", BigInteger, nullable=False),
    Column("passes", Float, nullable=False),
    ForeignKeyConstraint(
        ["experiment_id", "hour_ms"],
        ["trace_hours.experiment_id", "trace_hours.hour_ms"],
        ondelete="CASCADE",
    ),
)
"""The current feedback of each name on one stored hour's traces: how many, the count and sum
of numeric values, how many pass/fail verdicts and how many pass. Goes with its hour."""

tag_hours = Table(
    "tag_hours",
    metadata,
    Column("experiment_id", Integer, nullable=False),
    Column("hour_ms", BigInteger, nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=True),
    *_hour_sums(),
    ForeignKeyConstraint(
        ["experiment_id", "hour_ms"],
        ["trace_hours.experiment_id", "trace_hours.hour_ms"],
        ondelete="CASCADE",
    ),
    Index("ix_tag_hours", "experiment_id", "hour_ms", "key"),  # serves the cascade too
)
"""One stored hour's traces split by the value of one tag key, for ``trace_stats`` grouped by
that tag: a row per value, and always one with ``value`` NULL (the traces without the tag,
maybe none), which marks the key's split of that hour as stored. Goes with its hour. No
primary key: values may be longer than an index entry can hold; the split of an (hour, key)
is only ever written whole, after deleting the old one."""

POSTGRESQL_OWN_INDEXES = {
    "ix_traces_exp_duration",
    "ix_trace_tags_value",
    "ix_trace_metadata_value",
}
"""Indexes that PostgreSQL alone has, made by migrations: the duration index in "DESC NULLS
LAST" order (0006: PostgreSQL cannot read it off an ascending index and SQLite cannot declare
it), and the tag and metadata value indexes (0009)."""

VALUE_PREFIX = 200
"""Characters of a tag or metadata value that PostgreSQL's value index holds: at most 800 bytes
of UTF-8, far inside a B-tree entry's limit of about 2,700 bytes with the key and trace id."""

spans = Table(
    "spans",
    metadata,
    Column(
        "trace_id",
        String(64),
        ForeignKey("traces.trace_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("span_id", String(32), primary_key=True),
    Column("parent_span_id", String(32), nullable=True),
    Column("name", String(256), nullable=False),
    Column("span_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time_ns", BigInteger, nullable=False),
    Column("end_time_ns", BigInteger, nullable=True),
    Column("content", Text, nullable=False),
)

trace_tags = Table(
    "trace_tags",
    metadata,
    Column(
        "trace_id",
        String(64),
        ForeignKey("traces.trace_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

trace_metadata = Table(
    "trace_metadata",
    metadata,
    Column(
        "trace_id",
        String(64),
        ForeignKey("traces.trace_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

assessments = Table(
    "assessments",
    metadata,
    Column("assessment_id", String(64), primary_key=True),
    Column(
        "trace_id",
        String(64),
        ForeignKey("traces.trace_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("span_id", String(32), nullable=True),
    Column("name", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value_json", Text, nullable=True),
    Column("string_value", Text, nullable=True),
    Column("numeric_value", Float, nullable=True),
    Column("rationale", Text, nullable=True),
    Column("source_type", String(32), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("error_json", Text, nullable=True),
    Column("metadata_json", Text, nullable=True),
    Column("valid", Boolean, nullable=False),
    Column("latest", Boolean, nullable=False, default=False),
    Column("overrides", String(64), nullable=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("last_update_time_ms", BigInteger, nullable=False),
    # a trace's current verdict of a name: the filters' per-trace probe (four equalities, so
    # SQLite prefers it to ix_assessments_sort without statistics) and the writes' lookups
    Index("ix_assessments_trace", "trace_id", "kind", "name", "latest"),
    Index("ix_assessments_run", "run_id"),
    # "least trustworthy first": walk the current verdicts of one name in value order
    Index("ix_assessments_sort", "kind", "name", "latest", "numeric_value", "trace_id"),
)
"""``latest`` marks, per (trace, kind, name), the newest valid assessment: the current verdict
that filters and ``order_by`` look at. The store keeps it up to date on every write."""

llm_cache = Table(
    "llm_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("model", String(512), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)
"""Model calls by a hash of (model, messages, parameters, sample index): a re-run is free."""

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("scorers", Text, nullable=False),
    Column("judge_models", Text, nullable=False),
    Column("usage", Text, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("failure", Text, nullable=True),
    Column("plan", Text, nullable=True),
    Column("dataset", Text, nullable=True),
    Index("ix_runs_exp_start", "experiment_id", "start_time"),
)

run_metrics = Table(
    "run_metrics",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Float, nullable=False),
)

monitor_scorers = Table(
    "monitor_scorers",
    metadata,
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(256), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("sample_rate", Float, nullable=False),
    Column("filter_string", Text, nullable=True),
    Column("max_calls_per_hour", Integer, nullable=True),
    Column("max_cost_per_day", Float, nullable=True),
    Column("alert_below", Float, nullable=True),
    Column("alert_webhook", Text, nullable=True),
    Column("watermark_ms", BigInteger, nullable=True),
    Column("watermark_trace_id", String(64), nullable=True),
    Column("failures", Integer, nullable=False),
    Column("backoff_until_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("update_time_ms", BigInteger, nullable=False),
)
"""Scorers registered for monitoring, one row per (experiment, name): the current version, its
sampling, budgets and alert, the keyset watermark ``(watermark_ms, watermark_trace_id)`` below
which every sampled trace has been scored, and its health (consecutive failures, backoff)."""

monitor_scorer_versions = Table(
    "monitor_scorer_versions",
    metadata,
    Column("experiment_id", Integer, primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", Text, nullable=False),
    Column("create_time_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["experiment_id", "name"],
        ["monitor_scorers.experiment_id", "monitor_scorers.name"],
        ondelete="CASCADE",
    ),
)
"""Each version's definition (JSON: how to rebuild the scorer, judge model included)."""

monitor_claims = Table(
    "monitor_claims",
    metadata,
    Column("experiment_id", Integer, primary_key=True),
    Column("scorer", String(256), primary_key=True),
    Column("trace_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("claimed_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=True),
    Column("calls", Integer, nullable=False),
    Column("cost", Float, nullable=False),
    Column("passed", Float, nullable=True),
    Column("error", Text, nullable=True),
    ForeignKeyConstraint(
        ["experiment_id", "scorer"],
        ["monitor_scorers.experiment_id", "monitor_scorers.name"],
        ondelete="CASCADE",
    ),
    Index("ix_monitor_claims_finished", "experiment_id", "scorer", "finished_ms"),
)
"""One row per (scorer, sampled trace): inserted by the monitor process that takes the trace
(the primary key makes the insert a claim: a second process's insert does nothing), then
``done`` or ``failed`` with the calls, cost and pass/fail it took. A ``claimed`` row older than
the lease belongs to a process that died; another process may take it over."""

datasets = Table(
    "datasets",
    metadata,
    Column("dataset_id", String(64), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("experiment_ids", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("update_time_ms", BigInteger, nullable=False),
)
"""Evaluation datasets (``entities.dataset``): experiment ids and tags as JSON."""

dataset_records = Table(
    "dataset_records",
    metadata,
    Column(
        "dataset_id",
        String(64),
        ForeignKey("datasets.dataset_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("record_id", String(64), primary_key=True),
    Column("inputs_digest", String(64), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("expectations", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("source_type", String(16), nullable=False),
    Column("source_id", String(256), nullable=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("update_time_ms", BigInteger, nullable=False),
    Index("ix_dataset_records_inputs", "dataset_id", "inputs_digest", unique=True),
)
"""A dataset's records; the unique (dataset, inputs digest) makes a merge of the same inputs
an update of one record. Record ids lead with their creation millisecond, so reading a dataset
in id order reads it in the order it was built."""
