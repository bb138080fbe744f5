"""Per-hour sums of each experiment's traces for dashboard aggregates, and the triggers that
delete an hour's sums whenever a trace of that hour is written or deleted (``hourly_rollups``).
The table starts empty: aggregates fill it as they read hours.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tracejudge.store import hourly_rollups

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_hours",
        sa.Column(
            "experiment_id",
            sa.Integer,
            sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("hour_ms", sa.BigInteger, primary_key=True),
        sa.Column("traces", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("timed", sa.BigInteger, nullable=False),
        sa.Column("duration_sum", sa.BigInteger, nullable=False),
        sa.Column("durations", sa.LargeBinary, nullable=False),
    )
    for statement in hourly_rollups.create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in hourly_rollups.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("trace_hours")
