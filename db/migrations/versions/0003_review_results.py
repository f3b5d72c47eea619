"""review_results: what the model proposed when a sample was pushed, and what humans decided.

A separate table rather than new review_tasks columns: SQLite can only drop columns by
rebuilding the table, which would lose review_tasks' CHECK constraint on downgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_results",
        sa.Column("review_task_id", sa.Integer, sa.ForeignKey("review_tasks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("label_at_push", sa.String(50)),
        sa.Column("model_label", sa.String(50)),
        sa.Column("model_confidence", sa.Float),
        sa.Column("human_label", sa.String(50)),
        sa.Column("votes", sa.JSON),
        sa.Column("agreement", sa.Float),
        sa.Column("conflict", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("annotations_sig", sa.String(64)),
        sa.Column("pulled_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("review_results")
