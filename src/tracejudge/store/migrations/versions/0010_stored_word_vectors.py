"""PostgreSQL: the word vectors of trace requests and responses as stored generated columns,
with the GIN indexes on them instead of on the expression.

With an expression index, a search that walks another index — a common word among traces
ordered slowest first — had PostgreSQL tokenise each walked row's text again to check it
(about 70 µs per 600 characters): the 100th page of ``response MATCH 'cancel' AND tag.env =
'prod'`` by duration took 158 ms at 1M traces. A stored vector is read, not recomputed.
The text is tokenised once per write either way.

On an existing store this rewrites ``traces`` under an exclusive lock while it computes every
vector: minutes per million traces, writers waiting (a tracking server queues them). SQLite
is unchanged: its FTS5 index is probed per row, with no re-tokenising.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from tracejudge.store import text_search

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in text_search.pg_stored_vector_statements():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in text_search.pg_expression_index_statements():
            op.execute(statement)
