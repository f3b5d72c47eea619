"""ingest_rejections: every input that did not become a sample, with its reason.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_rejections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("dataset_id", "source_path", name="uq_ingest_rejections_dataset_path"),
    )
    op.create_index("ix_ingest_rejections_reason", "ingest_rejections", ["dataset_id", "reason"])


def downgrade() -> None:
    op.drop_index("ix_ingest_rejections_reason", "ingest_rejections")
    op.drop_table("ingest_rejections")
