"""Word search over requests, responses and span payloads.

SQLite: FTS5 tables over ``traces(request, response)`` and ``spans(content)`` that read their
text from the tables themselves (external content, no second copy), kept current by triggers
and filled here for an existing store. PostgreSQL: GIN indexes on the ``tsvector`` of the same
columns (expression indexes: PostgreSQL keeps them current itself).

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


def upgrade() -> None:
    for statement in text_search.create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in text_search.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
