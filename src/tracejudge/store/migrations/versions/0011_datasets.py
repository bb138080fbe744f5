"""Evaluation datasets: named sets of inputs and expectations, their records, and the dataset
an evaluation run scored (``runs.dataset``, JSON).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("experiment_ids", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("update_time_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dataset_records",
        sa.Column(
            "dataset_id",
            sa.String(64),
            sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("inputs_digest", sa.String(64), nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("expectations", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(256), nullable=True),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("update_time_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_dataset_records_inputs", "dataset_records", ["dataset_id", "inputs_digest"], unique=True
    )
    op.add_column("runs", sa.Column("dataset", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("dataset")
    op.drop_table("dataset_records")
    op.drop_table("datasets")
