"""Initial schema: experiments, traces, spans, tags, metadata and assessments.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _trace_fk() -> sa.ForeignKey:
    return sa.ForeignKey("traces.trace_id", ondelete="CASCADE")


def _key_value_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("trace_id", sa.String(64), _trace_fk(), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def upgrade() -> None:
    experiments = op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("tags", sa.Text, nullable=True),
    )
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column(
            "experiment_id",
            sa.Integer,
            sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("execution_time_ms", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("client_request_id", sa.String(256), nullable=True),
        sa.Column("request_preview", sa.String(1000), nullable=True),
        sa.Column("response_preview", sa.String(1000), nullable=True),
        sa.Column("request", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
    )
    op.create_index("ix_traces_exp_time", "traces", ["experiment_id", "timestamp_ms", "trace_id"])
    op.create_index("ix_traces_time", "traces", ["timestamp_ms", "trace_id"])
    op.create_index(
        "ix_traces_exp_duration", "traces", ["experiment_id", "execution_time_ms", "trace_id"]
    )
    op.create_index("ix_traces_exp_name", "traces", ["experiment_id", "name"])
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(64), _trace_fk(), primary_key=True),
        sa.Column("span_id", sa.String(32), primary_key=True),
        sa.Column("parent_span_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("span_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time_ns", sa.BigInteger, nullable=False),
        sa.Column("end_time_ns", sa.BigInteger, nullable=True),
        sa.Column("content", sa.Text, nullable=False),
    )
    _key_value_table("trace_tags")
    _key_value_table("trace_metadata")
    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.String(64), primary_key=True),
        sa.Column("trace_id", sa.String(64), _trace_fk(), nullable=False),
        sa.Column("span_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value_json", sa.Text, nullable=True),
        sa.Column("string_value", sa.Text, nullable=True),
        sa.Column("numeric_value", sa.Float, nullable=True),
        sa.Column("rationale", sa.Text, nullable=True),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("error_json", sa.Text, nullable=True),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("latest", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("overrides", sa.String(64), nullable=True),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("last_update_time_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_assessments_trace", "assessments", ["trace_id", "kind", "name", "latest"])
    op.create_index("ix_assessments_run", "assessments", ["run_id"])
    op.create_index(
        "ix_assessments_sort",
        "assessments",
        ["kind", "name", "latest", "numeric_value", "trace_id"],
    )
    # The default experiment has id 0, as in MLflow, so it exists before anything is logged.
    op.bulk_insert(
        experiments,
        [
            {
                "experiment_id": 0,
                "name": "Default",
                "creation_time": int(time.time() * 1000),
                "tags": None,
            }
        ],
    )


def downgrade() -> None:
    for table in ("assessments", "trace_metadata", "trace_tags", "spans", "traces", "experiments"):
        op.drop_table(table)
