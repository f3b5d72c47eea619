"""Initial ledger: datasets, samples, label_events (append-only), review_tasks, model_runs,
checkpoints, workflow_runs and the current_labels view.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

# Human labels beat dataset labels; within a source the newest event wins.
# Model predictions are never a current label: they are suggestions.
CURRENT_LABELS_VIEW = """
CREATE VIEW current_labels AS
SELECT sample_id, label, source, label_event_id FROM (
    SELECT e.sample_id AS sample_id, e.label AS label, e.source AS source, e.id AS label_event_id,
           ROW_NUMBER() OVER (
               PARTITION BY e.sample_id
               ORDER BY CASE e.source WHEN 'human' THEN 2 ELSE 1 END DESC, e.created_at DESC, e.id DESC
           ) AS rank_in_sample
    FROM label_events e
    WHERE e.source IN ('human', 'dataset')
) ranked
WHERE rank_in_sample = 1
"""


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("source_format", sa.String(50)),
        sa.Column("root", sa.Text),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.current_timestamp()),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("split", sa.String(20)),
        sa.Column("source_label", sa.String(50)),
        sa.Column("quality_rejected", sa.String(100)),
        sa.Column("blur", sa.Float),
        sa.Column("occlusion", sa.Float),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.current_timestamp()),
        sa.UniqueConstraint("dataset_id", "uid", name="uq_samples_dataset_uid"),
    )
    op.create_index("ix_samples_content_hash", "samples", ["content_hash"])
    op.create_table(
        "model_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("architecture", sa.String(100), nullable=False),
        sa.Column("weights_hash", sa.String(64)),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id")),
        sa.Column("params", sa.JSON),
        sa.Column("counts", sa.JSON),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
    )
    op.create_table(
        "label_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), nullable=False),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("previous_label", sa.String(50)),
        sa.Column("confidence", sa.Float),
        sa.Column("model_run_id", sa.Integer, sa.ForeignKey("model_runs.id")),
        sa.Column("ls_project_id", sa.Integer),
        sa.Column("ls_task_id", sa.Integer),
        sa.Column("ls_annotation_id", sa.Integer),
        sa.Column("dedup_key", sa.String(200), nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_label_events_dedup_key"),
        sa.CheckConstraint("source IN ('dataset','model','human')", name="ck_label_events_source"),
    )
    op.create_index("ix_label_events_sample_source", "label_events", ["sample_id", "source"])
    op.create_table(
        "review_tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), nullable=False),
        sa.Column("ls_project_id", sa.Integer, nullable=False),
        sa.Column("ls_task_id", sa.Integer),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100)),
        sa.Column("priority", sa.Float),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("sample_id", "ls_project_id", name="uq_review_tasks_sample_project"),
        sa.UniqueConstraint("ls_task_id", name="uq_review_tasks_ls_task"),
        sa.CheckConstraint("state IN ('pending','done','skipped','cancelled')", name="ck_review_tasks_state"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_run_id", sa.Integer, sa.ForeignKey("model_runs.id")),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id")),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("architecture", sa.String(100), nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("label_snapshot_id", sa.Integer),
        sa.Column("metrics", sa.JSON),
        sa.Column("is_best", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("path", name="uq_checkpoints_path"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stages", sa.JSON),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
    )
    op.execute(CURRENT_LABELS_VIEW)
    _create_append_only_guard()


def downgrade() -> None:
    _drop_append_only_guard()
    op.execute("DROP VIEW IF EXISTS current_labels")
    for table in ("workflow_runs", "checkpoints", "review_tasks", "label_events", "model_runs", "samples", "datasets"):
        op.drop_table(table)


def _create_append_only_guard() -> None:
    """label_events is a ledger: the database itself refuses to rewrite history."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION label_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'label_events is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER label_events_append_only BEFORE UPDATE OR DELETE ON label_events "
            "FOR EACH ROW EXECUTE FUNCTION label_events_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER label_events_append_only_{action.lower()} BEFORE {action} ON label_events "
                "BEGIN SELECT RAISE(ABORT, 'label_events is append-only'); END"
            )


def _drop_append_only_guard() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS label_events_append_only ON label_events")
        op.execute("DROP FUNCTION IF EXISTS label_events_append_only()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS label_events_append_only_{action}")
