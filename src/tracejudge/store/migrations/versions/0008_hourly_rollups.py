"""Per-hour sums of each experiment's traces, their feedback and their split by a tag's value
for dashboard aggregates, and the triggers that delete an hour's sums whenever a trace of
that hour, its feedback or its tags are written or deleted (``hourly_rollups``).
The table starts empty: aggregates fill it as they read hours.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tracejudge.store import hourly_rollup_triggers

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
    op.create_table(
        "feedback_hours",
        sa.Column("experiment_id", sa.Integer, primary_key=True),
        sa.Column("hour_ms", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("verdicts", sa.BigInteger, nullable=False),
        sa.Column("scored", sa.BigInteger, nullable=False),
        sa.Column("score_sum", sa.Float, nullable=False),
        sa.Column("judged", sa.BigInteger, nullable=False),
        sa.Column("passes", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id", "hour_ms"],
            ["trace_hours.experiment_id", "trace_hours.hour_ms"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "tag_hours",
        sa.Column("experiment_id", sa.Integer, nullable=False),
        sa.Column("hour_ms", sa.BigInteger, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("traces", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("timed", sa.BigInteger, nullable=False),
        sa.Column("duration_sum", sa.BigInteger, nullable=False),
        sa.Column("durations", sa.LargeBinary, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id", "hour_ms"],
            ["trace_hours.experiment_id", "trace_hours.hour_ms"],
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_tag_hours", "tag_hours", ["experiment_id", "hour_ms", "key"])
    for statement in hourly_rollup_triggers.create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in hourly_rollup_triggers.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("tag_hours")
    op.drop_table("feedback_hours")
    op.drop_table("trace_hours")
