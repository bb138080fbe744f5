"""Tag and metadata values on PostgreSQL: a B-tree on (key, first characters of the value,
trace) in place of the hash index on the value.

The hash index (0006) served ``tag.user = 'u7'`` inside an OR, but at 10M traces (20M tag rows
with about a thousand distinct values) its build crawled through long overflow chains: 16 % in
22 minutes. A B-tree sorts once and stores repeated keys compactly; it also narrows by key,
which the hash on the value alone could not, and carries the trace id, so the set of matching
traces is read from the index alone. Only a prefix of the value (``VALUE_PREFIX`` characters)
is indexed, so no value can exceed a B-tree entry's size limit and fail a write; the filter
compares the prefix too (``filter_sql``). SQLite keeps probing each trace's tags by its
primary key.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from tracejudge.store.schema import VALUE_PREFIX

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("trace_tags", "trace_metadata")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_value")
        op.execute(
            f"CREATE INDEX ix_{table}_value ON {table} "
            f"(key, substr(value, 1, {VALUE_PREFIX}), trace_id)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_value")
        op.execute(f"CREATE INDEX ix_{table}_value ON {table} USING hash (value)")
