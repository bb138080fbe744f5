"""Word search over requests, responses and span payloads; covering indexes for time ranges.

SQLite: FTS5 tables over ``traces(request, response)`` and ``spans(content)`` that read their
text from the tables themselves (external content, no second copy), kept current by triggers
and filled here for an existing store. PostgreSQL: GIN indexes on the ``tsvector`` of the same
columns (expression indexes: PostgreSQL keeps them current itself).

The time and duration indexes of ``traces`` carry the columns that aggregates and range filters
read (status and duration; start time), so those are answered from the index alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from tracejudge.store import text_search

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


_WIDER = {
    "ix_traces_exp_time": (
        ["experiment_id", "timestamp_ms", "trace_id"],
        ["experiment_id", "timestamp_ms", "trace_id", "status", "execution_time_ms"],
    ),
    "ix_traces_exp_duration": (
        ["experiment_id", "execution_time_ms", "trace_id"],
        ["experiment_id", "execution_time_ms", "trace_id", "timestamp_ms"],
    ),
}


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, (_, wider) in _WIDER.items():
        op.drop_index(name, table_name="traces")
        if postgresql and name == "ix_traces_exp_duration":
            # in the order of "slowest first" (DESC NULLS LAST, as the search sorts), which
            # PostgreSQL cannot read off an ascending index (that gives DESC NULLS FIRST)
            op.execute(
                "CREATE INDEX ix_traces_exp_duration ON traces (experiment_id, "
                "execution_time_ms DESC NULLS LAST, trace_id DESC, timestamp_ms)"
            )
        else:
            op.create_index(name, "traces", wider)
    if postgresql:
        # "tag.user = 'u7'" inside an OR is planned as the set of traces with that tag: found
        # through the value, not a scan of every tag. Hash: values may be longer than a B-tree
        # entry can hold. (SQLite probes each trace's tags by its primary key instead.)
        for table in ("trace_tags", "trace_metadata"):
            op.execute(f"CREATE INDEX ix_{table}_value ON {table} USING hash (value)")
    for statement in text_search.create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("trace_tags", "trace_metadata"):
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_value")
    for statement in text_search.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    for name, (narrower, _) in _WIDER.items():
        op.drop_index(name, table_name="traces")
        op.create_index(name, "traces", narrower)
