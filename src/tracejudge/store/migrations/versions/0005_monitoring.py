"""Scorers registered for monitoring, their versions, and the monitor's claims on traces.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_scorers",
        sa.Column(
            "experiment_id",
            sa.Integer,
            sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sample_rate", sa.Float, nullable=False),
        sa.Column("filter_string", sa.Text, nullable=True),
        sa.Column("max_calls_per_hour", sa.Integer, nullable=True),
        sa.Column("max_cost_per_day", sa.Float, nullable=True),
        sa.Column("alert_below", sa.Float, nullable=True),
        sa.Column("alert_webhook", sa.Text, nullable=True),
        sa.Column("watermark_ms", sa.BigInteger, nullable=True),
        sa.Column("watermark_trace_id", sa.String(64), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("backoff_until_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("update_time_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "monitor_scorer_versions",
        sa.Column("experiment_id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id", "name"],
            ["monitor_scorers.experiment_id", "monitor_scorers.name"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "monitor_claims",
        sa.Column("experiment_id", sa.Integer, primary_key=True),
        sa.Column("scorer", sa.String(256), primary_key=True),
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("claimed_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger, nullable=True),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("passed", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id", "scorer"],
            ["monitor_scorers.experiment_id", "monitor_scorers.name"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_monitor_claims_finished",
        "monitor_claims",
        ["experiment_id", "scorer", "finished_ms"],
    )


def downgrade() -> None:
    op.drop_index("ix_monitor_claims_finished", "monitor_claims")
    op.drop_table("monitor_claims")
    op.drop_table("monitor_scorer_versions")
    op.drop_table("monitor_scorers")
