"""review_removals: faces a reviewer answered "not a face" or "unclear" for leave the working set, on record;
and what CROWDLAB needs (curate/review/consensus.py): each task's answers per annotator and its consensus
quality (review_results), the annotators' estimated quality at each pull (review_pulls).

Append-only like label_events, and guarded the same way (0001 and 0004): UPDATE and DELETE refused,
SQLite's INSERT OR REPLACE defused, PostgreSQL's TRUNCATE refused. A reviewer who changes their mind
adds a row (``removed`` false) rather than erasing one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLE = "review_removals"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), nullable=False),
        sa.Column("removed", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(20)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ls_project_id", sa.Integer),
        sa.Column("ls_task_id", sa.Integer),
        sa.Column("ls_annotation_id", sa.Integer),
        sa.Column("dedup_key", sa.String(200), nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_review_removals_dedup_key"),
    )
    op.create_index("ix_review_removals_sample", _TABLE, ["sample_id"])
    op.add_column("review_results", sa.Column("answers", sa.JSON))
    op.add_column("review_results", sa.Column("consensus_quality", sa.Float))
    op.add_column("review_pulls", sa.Column("annotator_quality", sa.JSON))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {_TABLE}_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{_TABLE} is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(f"CREATE TRIGGER {_TABLE}_append_only BEFORE UPDATE OR DELETE ON {_TABLE} FOR EACH ROW EXECUTE FUNCTION {_TABLE}_append_only()")
        op.execute(f"CREATE TRIGGER {_TABLE}_append_only_truncate BEFORE TRUNCATE ON {_TABLE} FOR EACH STATEMENT EXECUTE FUNCTION {_TABLE}_append_only()")
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER {_TABLE}_append_only_{action.lower()} BEFORE {action} ON {_TABLE} "
                   f"BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only'); END")
    op.execute(f"CREATE TRIGGER {_TABLE}_append_only_replace_id BEFORE INSERT ON {_TABLE} "
               f"WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM {_TABLE} WHERE id = NEW.id) "
               f"BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only'); END")
    op.execute(f"CREATE TRIGGER {_TABLE}_append_only_replace_key BEFORE INSERT ON {_TABLE} "
               f"WHEN EXISTS (SELECT 1 FROM {_TABLE} WHERE dedup_key = NEW.dedup_key) BEGIN SELECT RAISE(IGNORE); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_append_only_truncate ON {_TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_append_only ON {_TABLE}")
        op.execute(f"DROP FUNCTION IF EXISTS {_TABLE}_append_only()")
    else:
        for name in ("update", "delete", "replace_id", "replace_key"):
            op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_append_only_{name}")
    op.drop_index("ix_review_removals_sample", _TABLE)
    op.drop_table(_TABLE)
    # SQLite drops a column by copying the table (batch mode); neither table has a CHECK constraint to lose
    with op.batch_alter_table("review_pulls") as batch:
        batch.drop_column("annotator_quality")
    with op.batch_alter_table("review_results") as batch:
        batch.drop_column("consensus_quality")
        batch.drop_column("answers")
