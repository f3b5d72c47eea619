"""review_results: what the model proposed when a sample was pushed, and what humans decided;
review_pulls: one row per completed pull, whose server time the next pull lists from.

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


    op.create_table(
        "review_pulls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ls_project_id", sa.Integer, nullable=False),
        sa.Column("listed_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("listed", sa.Integer, nullable=False),
        sa.Column("changed", sa.Integer, nullable=False),
        sa.Column("new_human_labels", sa.Integer, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_pulls_project", "review_pulls", ["dataset_id", "ls_project_id", "listed_from"])


def downgrade() -> None:
    op.drop_index("ix_review_pulls_project", "review_pulls")
    op.drop_table("review_pulls")
    op.drop_table("review_results")
